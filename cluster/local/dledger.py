"""A Raft group member, DLedger-style, whose replicated log IS the broker's commit log.

Pieces: dledger_rules (pure decisions), dledger_wire (peer frames), dledger_transport (outbound peer links),
dledger_handlers (inbound requests), dledger_election (pre-vote + vote), dledger_replication (leader push),
dledger_pending (waiting appends and the errors they end in), dledger_state (term/vote file, tail cache).

How a broker uses this
----------------------
- Build one ``RaftNode(self_id=cfg.raft_self_id, peers=cfg.raft_peers, log=commit_log, state_dir=...,
  timing=cfg.timing, listen_host=cfg.host, listen_port=cfg.raft_port, on_commit=..., on_role_change=...,
  on_truncate=...)`` and ``await node.start()``; the caller owns the CommitLog (flush it, close it after
  ``await node.stop()``). Do not register with NameServers at startup: the role callback does it.
- ``on_role_change(role, term, leader_id)``: on "leader" register at once as brokerId 0 (SYNC_MASTER);
  on "follower" / "candidate" register as a slave with brokerId = int(self_id[1:]) + 1 (n0 -> 1, n2 -> 3).
- Send handler: ``entries, fut = node.append_nowait([record])`` and answer when ``fut`` completes:
  result -> SEND_OK (each Entry has index, term and the payload's commit-log position);
  ``NotLeaderError`` (raised at once: certainly not stored) -> SERVICE_NOT_AVAILABLE (14);
  ``PendingFullError`` (raised at once: certainly not stored, DLedger LEADER_PENDING_FULL) and the
  future's ``QuorumTimeoutError`` / ``LeadershipLostError`` (AMBIGUOUS: the record may still commit)
  -> SYSTEM_ERROR (1) with remark "[PC_SYNCHRONIZED]...". The Java producer retries both codes elsewhere.
- Consume queues are dispatched from ``on_commit(commit_index)``: every entry up to that index is committed;
  it is called in order and never goes back. After a restart commit_index starts at 0 and the first call
  may jump far ahead (it is learned from the leader): the store tracks how far it dispatched itself.
  Entries with an EMPTY payload are the leaders' no-op entries: skip them.
- ``on_truncate(index)``: an uncommitted tail from ``index`` on was removed (a deposed leader or divergent
  follower). Never below the commit index; the store must rebuild its queue offsets from the log.
- Durability: an acknowledged entry is in the OS page cache of a majority (it survives killed processes;
  fsync policy is the commit log's), as with DLedger's asynchronous flush.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cluster.local import dledger_rules as rules
from cluster.local.config import Timing
from cluster.local.dledger_election import Elector
from cluster.local.dledger_handlers import PeerHandlers
from cluster.local.dledger_pending import (LeadershipLostError, NotLeaderError, PendingAppends, PendingFullError,
                                           QuorumTimeoutError, RaftError)
from cluster.local.dledger_replication import Replicator
from cluster.local.dledger_state import PersistentState, TailCache
from cluster.local.dledger_transport import PeerLink
from cluster.local.server import RemotingServer

if TYPE_CHECKING:
    from cluster.local.commitlog import CommitLog, Entry

__all__ = ["RaftNode", "RaftError", "NotLeaderError", "QuorumTimeoutError", "LeadershipLostError",
           "PendingFullError"]

logger = logging.getLogger(__name__)

RaftRole = Literal["leader", "follower", "candidate"]
#: DLedger maxPendingRequestsNum: uncommitted entries a leader accepts before refusing appends.
MAX_PENDING = 10000


class RaftNode:
    """One member of a Raft group; see the module docstring for how a broker drives it."""

    def __init__(self, self_id: str, peers: dict[str, str], log: CommitLog, state_dir: Path, timing: Timing,
                 listen_host: str, listen_port: int, on_commit: Callable[[int], None],
                 on_role_change: Callable[[str, int, str | None], None], *,
                 on_truncate: Callable[[int], None] | None = None, rng: random.Random | None = None,
                 max_pending: int = MAX_PENDING) -> None:
        if self_id not in peers:
            raise ValueError(f"self id {self_id!r} is not among the peers {sorted(peers)}")
        self.self_id, self.peers, self.log, self.timing = self_id, dict(peers), log, timing
        self.listen_host, self.listen_port = listen_host, listen_port
        self._on_commit, self._on_role_change, self._on_truncate = on_commit, on_role_change, on_truncate
        self.max_pending = max_pending
        self._state = PersistentState(state_dir)
        self._cache = TailCache()
        self._pending = PendingAppends()
        self._elector = Elector(self, rng)
        self._role: RaftRole = "follower"
        self._leader_id: str | None = None
        self._announced: tuple[str, int, str | None] | None = None
        self.commit_index = 0
        self.applied = 0
        #: When a leader (or a vote we granted) last reset the election timer.
        self.last_contact = float("-inf")
        self._leader_contact = float("-inf")
        self.links: dict[str, PeerLink] = {}
        self.replicators: dict[str, Replicator] = {}
        self._server: RemotingServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._leader_task: asyncio.Task[None] | None = None
        self._not_leader = asyncio.Event()
        self._kick_scheduled = False
        self.stopped = False

    # ------------------------------------------------------------ properties
    @property
    def role(self) -> RaftRole:
        return self._role

    @property
    def term(self) -> int:
        return self._state.current.term

    @property
    def voted_for(self) -> str | None:
        return self._state.current.voted_for

    @property
    def leader_id(self) -> str | None:
        return self._leader_id

    @staticmethod
    def now() -> float:
        return time.monotonic()  # the clock asyncio's loop uses; comparable across processes on Linux

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._state.load()
        self._not_leader.set()
        self._server = RemotingServer(f"raft-{self.self_id}", self.listen_host, self.listen_port,
                                      idle_timeout=None)
        PeerHandlers(self).register(self._server)
        await self._server.start()
        reconnect_max = max(0.1, min(1.0, self.timing.raft_heartbeat_interval))
        for peer_id, addr in self.peers.items():
            if peer_id != self.self_id:
                self.links[peer_id] = PeerLink(peer_id, addr, reconnect_max=reconnect_max,
                                               on_connected=self._on_link_connected)
                self.links[peer_id].start()
        self._announce()
        self._tasks.append(asyncio.create_task(self._elector.run(), name=f"raft-election-{self.self_id}"))

    async def stop(self) -> None:
        if self._role == "leader":
            self._stop_leading("node stopping")
            self._role = "follower"
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # a wait_for may swallow a cancellation (Python 3.11): the loops also check ``stopped``
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks.clear()
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
        if self._server is not None:
            await self._server.stop()

    # ------------------------------------------------------------ appends (leader)
    def append_nowait(self, payloads: list[bytes]) -> tuple[list[Entry], asyncio.Future[list[Entry]]]:
        """Append to the log now and return the entries and a future that completes when they commit.

        Raises NotLeaderError / PendingFullError at once (nothing appended). The future fails with
        QuorumTimeoutError or LeadershipLostError (both ambiguous). Payloads must be non-empty bytes."""
        if self._role != "leader":
            raise NotLeaderError(self._leader_id)
        if not payloads or not all(payloads):
            raise ValueError("append needs at least one payload, and empty payloads are reserved for no-ops")
        if self.log.last_index - self.commit_index + len(payloads) > self.max_pending:
            raise PendingFullError(f"{self.log.last_index - self.commit_index} entries await a quorum")
        entries = self.log.append(payloads, self.term)
        self._cache.add(entries)
        future: asyncio.Future[list[Entry]] = asyncio.get_running_loop().create_future()
        self._pending.add(entries, self.now() + self.timing.raft_max_wait_ack, future)
        self._after_local_append()
        return entries, future

    async def append(self, payloads: list[bytes]) -> list[Entry]:
        """Append and wait until a majority holds the entries (see append_nowait for the errors)."""
        _, future = self.append_nowait(payloads)
        return await future

    def _after_local_append(self) -> None:
        if len(self.peers) == 1:
            self.on_match_advanced()  # a group of one commits on its own append
        elif not self._kick_scheduled:
            # Group commit: every append of this loop iteration leaves in the same push round.
            self._kick_scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)

    def _kick(self) -> None:
        self._kick_scheduled = False
        for replicator in self.replicators.values():
            replicator.pump()

    def entries_for_send(self, index: int, max_bytes: int, max_count: int) -> list[Entry]:
        cached = self._cache.get(index, max_bytes, max_count)
        return cached if cached is not None else self.log.entries_from(index, max_bytes, max_count)

    # ------------------------------------------------------------ commit
    def on_match_advanced(self) -> None:
        if self._role != "leader":
            return
        matches = [self.log.last_index, *(r.match_index for r in self.replicators.values())]
        new_commit = rules.next_commit(matches, self.log.term_at, self.term, self.commit_index)
        if new_commit > self.commit_index:
            self._set_commit(new_commit)

    def learn_commit(self, leader_commit: int) -> None:
        """A follower advances its commit index to what the leader says, within what it holds."""
        if leader_commit > self.commit_index:
            self._set_commit(min(leader_commit, self.log.last_index))

    def _set_commit(self, index: int) -> None:
        self.commit_index = index
        try:
            self._on_commit(index)
        except Exception:
            logger.exception("raft %s: on_commit(%d) failed", self.self_id, index)
        self.applied = index
        self._pending.commit(index)

    def truncate_log(self, index: int) -> None:
        logger.info("truncated log from index=%d (node %s, last was %d)", index, self.self_id,
                    self.log.last_index)
        self.log.truncate_from(index)
        self._cache.truncate_from(index)
        if self._on_truncate is not None:
            try:
                self._on_truncate(index)
            except Exception:
                logger.exception("raft %s: on_truncate(%d) failed", self.self_id, index)

    # ------------------------------------------------------------ role changes
    def follow(self, term: int, leader_id: str) -> bool:
        """A valid push from ``leader_id`` in ``term`` (>= ours): follow it. False if we lead this term."""
        if term == self.term and self._role == "leader":
            logger.error("raft %s: %s claims leadership of our own term %d; ignoring", self.self_id, leader_id, term)
            return False
        if term > self.term or self._role != "follower" or self._leader_id != leader_id:
            self.step_down(term, leader_id)
        self.last_contact = self._leader_contact = self.now()
        return True

    def step_down(self, term: int, leader_id: str | None, reason: str = "newer term") -> None:
        """Become a follower in ``term`` (persisted first when it is new)."""
        if term > self.term:
            self._state.save(term, None)
        if self._role == "leader":
            self._stop_leading(reason)
        self._role, self._leader_id = "follower", leader_id
        self._not_leader.set()
        self._announce()

    def record_vote(self, candidate_id: str) -> None:
        self._state.save(self.term, candidate_id)  # durable before the answer leaves
        self.last_contact = self.now()  # granting a vote restarts our own election timer (Raft §5.2)

    def become_candidate(self) -> int:
        term = self.term + 1
        self._state.save(term, self.self_id)
        self._role, self._leader_id = "candidate", None
        self._announce()
        return term

    def become_leader(self) -> None:
        self._role, self._leader_id = "leader", self.self_id
        self._not_leader.clear()
        self._cache.clear()
        push_timeout = max(1.0, 2 * self.timing.raft_heartbeat_interval)  # DLedger maxPushTimeOutMs 1 s
        self.replicators = {pid: Replicator(self, link, self.term, push_timeout) for pid, link in self.links.items()}
        self._cache.add(self.log.append([b""], self.term))  # no-op: commits everything before it (§5.4.2)
        self._announce()
        self._leader_task = asyncio.create_task(self._lead(), name=f"raft-leader-{self.self_id}")
        self._after_local_append()

    def _stop_leading(self, reason: str) -> None:
        if self._leader_task is not None:
            self._leader_task.cancel()
            self._leader_task = None
        for replicator in self.replicators.values():
            replicator.stop()
        self.replicators = {}
        self._cache.clear()
        self._pending.fail_all(reason)

    def leader_fresh(self) -> bool:
        """Whether we lead, or heard from a leader recently enough to refuse pre-votes."""
        if self._role == "leader":
            return True
        window = rules.leader_fresh_window(self.timing.raft_heartbeat_interval, self.timing.raft_max_heartbeat_leak)
        return self._leader_id is not None and self.now() - self._leader_contact < window

    async def wait_not_leader(self) -> None:
        await self._not_leader.wait()

    def _announce(self) -> None:
        state = (self._role, self.term, self._leader_id)
        if state == self._announced:
            return
        self._announced = state
        if self._role == "leader":
            logger.info("became leader term=%d", self.term)
        elif self._role == "candidate":
            logger.info("became candidate term=%d", self.term)
        else:
            logger.info("became follower term=%d leader=%s", self.term, self._leader_id)
        try:
            self._on_role_change(*state)
        except Exception:
            logger.exception("raft %s: on_role_change%s failed", self.self_id, state)

    # ------------------------------------------------------------ leader duties
    async def _lead(self) -> None:
        timing = self.timing
        window = rules.election_timeout(timing.raft_heartbeat_interval, timing.raft_max_heartbeat_leak)
        tick = min(0.05, timing.raft_heartbeat_interval / 4)
        while self._role == "leader":
            now = self.now()
            self._pending.expire(now)
            for replicator in self.replicators.values():
                replicator.heartbeat_if_idle(now, timing.raft_heartbeat_interval)
            if not rules.has_quorum((now - r.last_ack for r in self.replicators.values()), window, len(self.peers)):
                logger.info("stepped down: no quorum (node %s, term %d)", self.self_id, self.term)
                self._leader_task = None  # this very task ends here; do not cancel it from inside
                self.step_down(self.term, None, "stepped down: no quorum")
                return
            await asyncio.sleep(tick)

    def _on_link_connected(self, peer_id: str) -> None:
        replicator = self.replicators.get(peer_id)
        if replicator is not None:
            replicator.pump()

    # ------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """A JSON-friendly snapshot for status pages and tests."""
        now = self.now()
        return {
            "selfId": self.self_id, "role": self._role, "term": self.term, "leaderId": self._leader_id,
            "commitIndex": self.commit_index, "applied": self.applied, "lastIndex": self.log.last_index,
            "lastTerm": self.log.last_term, "pending": len(self._pending),
            "peers": {pid: {"connected": link.connected,
                            "matchIndex": self.replicators[pid].match_index if pid in self.replicators else None,
                            "nextIndex": self.replicators[pid].next_index if pid in self.replicators else None,
                            "lastAckAge": (now - self.replicators[pid].last_ack) if pid in self.replicators else None}
                      for pid, link in self.links.items()},
        }
