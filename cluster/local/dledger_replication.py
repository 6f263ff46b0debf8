"""Leader side of log replication: one Replicator per follower, pushing pipelined batches of entries.

A replicator keeps up to MAX_INFLIGHT pushes (and MAX_INFLIGHT_BYTES) outstanding on its peer link and
advances next_index optimistically as it sends. The responses arrive in order on the one connection. A
rejection (the follower's log does not match at prev_index) or a lost/timed-out push starts a new epoch:
everything still in flight is forgotten, and sending resumes from the follower's hint (rejection) or from
match_index + 1 (loss). Successful answers of an older epoch still raise match_index, since a success
always means the follower holds that prefix. Pushes with no entries are the heartbeats.
"""
from __future__ import annotations

import functools
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cluster.local import dledger_rules as rules
from cluster.local import dledger_wire as wire
from cluster.local.dledger_transport import PeerLink
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.dledger import RaftNode

logger = logging.getLogger(__name__)

#: Pushes outstanding per follower: enough to keep the link busy while one is being answered.
MAX_INFLIGHT = 4
MAX_INFLIGHT_BYTES = 8 * 1024 * 1024
#: One push carries at most this much payload (a batch is never split below one entry).
BATCH_BYTES = 1024 * 1024
BATCH_COUNT = 4096


@dataclass(slots=True)
class _Flight:
    seq: int
    last_index: int
    nbytes: int


class Replicator:
    """Replication state of one follower, for one leader term."""

    max_inflight = MAX_INFLIGHT
    batch_count = BATCH_COUNT

    def __init__(self, node: RaftNode, link: PeerLink, term: int, push_timeout: float) -> None:
        self.node = node
        self.link = link
        self.peer_id = link.peer_id
        self.term = term
        self.push_timeout = push_timeout
        self.next_index = node.log.last_index + 1
        self.match_index = 0
        self.last_ack = node.now()  # a new leader gets one full window before it must have a quorum
        self.last_sent = float("-inf")
        self.stopped = False
        self._epoch = 0
        self._seq = 0
        self._inflight: deque[_Flight] = deque()
        self._inflight_bytes = 0

    def stop(self) -> None:
        self.stopped = True

    def pump(self) -> None:
        """Send whatever the follower lacks, as far as the pipeline allows."""
        if self.stopped or not self.link.connected:
            return
        log = self.node.log
        while (self.next_index <= log.last_index and len(self._inflight) < self.max_inflight
               and self._inflight_bytes < MAX_INFLIGHT_BYTES):
            entries = self.node.entries_for_send(self.next_index, BATCH_BYTES, self.batch_count)
            if not entries or not self._send([e.term for e in entries], [e.payload for e in entries]):
                return

    def heartbeat_if_idle(self, now: float, interval: float) -> None:
        """An empty push when nothing went out for a heartbeat interval (DLedger heartBeatTimeIntervalMs)."""
        if not self.stopped and now - self.last_sent >= interval:
            self.pump()
            if now - self.last_sent >= interval:
                self._send([], [])

    def _send(self, terms: list[int], payloads: list[bytes]) -> bool:
        prev_index = self.next_index - 1
        prev_term = self.node.log.term_at(prev_index)
        if prev_term is None:  # our log shrank under the follower's next index: probe from our end
            self.next_index = self.node.log.last_index + 1
            return False
        req = wire.AppendRequest(term=self.term, leader_id=self.node.self_id, prev_index=prev_index,
                                 prev_term=prev_term, commit=self.node.commit_index, terms=tuple(terms),
                                 payloads=payloads)
        self._seq += 1
        last = prev_index + len(payloads)
        callback = functools.partial(self._on_response, self._epoch, self._seq, last)
        if not self.link.request(wire.append_request(req), callback, self.push_timeout):
            return False
        nbytes = sum(map(len, payloads))
        self._inflight.append(_Flight(self._seq, last, nbytes))
        self._inflight_bytes += nbytes
        self.next_index = last + 1
        self.last_sent = self.node.now()
        return True

    def _on_response(self, epoch: int, seq: int, last: int, cmd: RemotingCommand | None) -> None:
        if self.stopped:
            return
        if cmd is None:
            self._restart(epoch, self.match_index + 1, "no answer")
            return
        try:
            resp = wire.parse_append_response(cmd)
        except wire.WireError as exc:
            logger.warning("raft %s: bad append response from %s: %s", self.node.self_id, self.peer_id, exc)
            self._restart(epoch, self.match_index + 1, "bad answer")
            return
        if resp.term > self.term:
            self.node.step_down(resp.term, None)
            return
        self.last_ack = self.node.now()
        if resp.success:
            self._on_success(epoch, seq, min(last, resp.index))
        else:
            self._on_reject(epoch, resp.index)
        self.pump()

    def _on_success(self, epoch: int, seq: int, matched: int) -> None:
        if epoch == self._epoch:
            while self._inflight and self._inflight[0].seq <= seq:
                self._inflight_bytes -= self._inflight.popleft().nbytes
        if matched > self.match_index:
            self.match_index = matched
            self.node.on_match_advanced()

    def _on_reject(self, epoch: int, hint: int) -> None:
        if epoch != self._epoch:
            return  # the pipeline was already restarted; this answers a push we forgot about
        resume = rules.next_index_after_reject(hint, self.match_index, self.next_index, self.node.log.last_index)
        if resume <= self.match_index:
            logger.warning("raft %s: follower %s lost entries up to %d it had acknowledged",
                           self.node.self_id, self.peer_id, self.match_index)
            self.match_index = resume - 1
        self._restart(epoch, resume, "log mismatch")

    def _restart(self, epoch: int, resume: int, why: str) -> None:
        if epoch != self._epoch:
            return
        logger.debug("raft %s: restarting push to %s at %d (%s)", self.node.self_id, self.peer_id, resume, why)
        self._epoch += 1
        self._inflight.clear()
        self._inflight_bytes = 0
        self.next_index = resume
