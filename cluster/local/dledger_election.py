"""Leader election, DLedger-style timing with a Raft pre-vote in front.

A follower that has not heard from a leader for max_heartbeat_leak x heartbeat_interval waits a random
time in [vote_min, vote_max] (so the followers of a dead leader do not all ask at once), then runs a
pre-vote: it asks whether the others would vote for it in term + 1, without anyone changing state. Only
with a majority of yes does it become candidate, raise and persist its term and ask for real votes. A node
cut off from the group therefore keeps its term instead of inflating it, and cannot depose the live leader
when it comes back. A group of one elects itself at once.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from cluster.local import dledger_rules as rules
from cluster.local import dledger_wire as wire
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.dledger import RaftNode

logger = logging.getLogger(__name__)


class Elector:
    """Runs the election loop of one node for as long as the node runs."""

    def __init__(self, node: RaftNode, rng: random.Random | None = None) -> None:
        self.node = node
        self.rng = rng or random.Random()
        timing = node.timing
        self.timeout = rules.election_timeout(timing.raft_heartbeat_interval, timing.raft_max_heartbeat_leak)
        # A vote round must end well before the next one could start; DLedger's RPCs use a 1 s cap too.
        self.vote_rpc_timeout = min(1.0, 2 * timing.raft_heartbeat_interval)

    async def run(self) -> None:
        node = self.node
        while not node.stopped:
            await node.wait_not_leader()
            if len(node.peers) == 1:
                node.become_candidate()
                node.become_leader()
                continue
            await self._wait_for_silence()
            await asyncio.sleep(self.rng.uniform(node.timing.raft_vote_min, node.timing.raft_vote_max))
            if not self._still_leaderless(node.term):
                continue  # a leader showed up while we waited
            term = node.term
            if await self._poll(wire.PRE_VOTE, term + 1) and self._still_leaderless(term):
                await self._campaign()

    def _still_leaderless(self, term: int) -> bool:
        """No leader appeared, we granted no vote and saw no newer term since we started asking: while
        our pre-vote was out another candidate may have won, and standing now would depose it."""
        node = self.node
        return node.role != "leader" and node.term == term and node.now() - node.last_contact >= self.timeout

    async def _wait_for_silence(self) -> None:
        """Return once no leader (and no vote we granted) reset our timer for a whole election timeout."""
        node = self.node
        while True:
            remaining = self.timeout - (node.now() - node.last_contact)
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    async def _campaign(self) -> None:
        node = self.node
        term = node.become_candidate()
        won = await self._poll(wire.VOTE, term)
        if won and node.role == "candidate" and node.term == term:
            node.become_leader()
        elif node.role == "candidate" and node.term == term:
            logger.info("raft %s: election of term %d not won; retrying after a random wait", node.self_id, term)

    async def _poll(self, code: int, term: int) -> bool:
        """Ask every peer for a (pre-)vote in ``term``; True once a majority (self included) said yes."""
        node = self.node
        needed = rules.majority(len(node.peers))
        tally = {"yes": 1, "answers": 1}
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_answer(cmd: RemotingCommand | None) -> None:
            tally["answers"] += 1
            if cmd is not None and self._granted(cmd, term):
                tally["yes"] += 1
            if not done.done() and (tally["yes"] >= needed or tally["answers"] == len(node.peers)):
                done.set_result(tally["yes"] >= needed)

        for link in node.links.values():
            req = wire.VoteRequest(term=term, candidate_id=node.self_id, last_index=node.log.last_index,
                                   last_term=node.log.last_term)
            if not link.request(wire.vote_request(code, req), on_answer, self.vote_rpc_timeout):
                on_answer(None)
        try:
            return await asyncio.wait_for(done, self.vote_rpc_timeout + 0.1)
        except asyncio.TimeoutError:
            return False

    def _granted(self, cmd: RemotingCommand, term: int) -> bool:
        node = self.node
        try:
            resp = wire.parse_vote_response(cmd)
        except wire.WireError as exc:
            logger.warning("raft %s: bad vote response: %s", node.self_id, exc)
            return False
        if resp.term > node.term and resp.term >= term:
            node.step_down(resp.term, None)  # someone is ahead of us: adopt its term, stop asking
            return False
        return resp.granted
