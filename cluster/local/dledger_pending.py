"""The appends a leader has accepted but not yet answered, and the errors an append can end in.

Waiters are kept in log order in one deque. Commit answers a prefix of it, expiry (raft_max_wait_ack) and
loss of leadership answer the rest; all three pop from the left, so no per-append timer or task exists.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from cluster.local.commitlog import Entry


class RaftError(HarnessError):
    """Base of the errors a Raft append ends in."""


class NotLeaderError(RaftError):
    """This node is not the leader: nothing was appended. ``leader_id`` is the leader we know, if any."""

    def __init__(self, leader_id: str | None) -> None:
        self.leader_id = leader_id
        super().__init__(f"not the leader; leader is {leader_id or 'unknown'}")


class PendingFullError(RaftError):
    """Too many uncommitted entries (DLedger LEADER_PENDING_FULL): nothing was appended."""


class QuorumTimeoutError(RaftError):
    """No majority acknowledged the entries within raft_max_wait_ack (DLedger WAIT_QUORUM_ACK_TIMEOUT).

    The outcome is AMBIGUOUS: the entries stay in the leader's log and may still commit later."""


class LeadershipLostError(QuorumTimeoutError):
    """The leader lost its leadership (or stopped) before the entries committed. Also ambiguous: a new
    leader may hold and commit them, or they may be truncated."""


class PendingAppends:
    """Futures of uncommitted appends, ordered by their last log index."""

    def __init__(self) -> None:
        self._waiters: deque[tuple[int, float, asyncio.Future[list[Entry]], list[Entry]]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, entries: list[Entry], deadline: float, future: asyncio.Future[list[Entry]]) -> None:
        self._waiters.append((entries[-1].index, deadline, future, entries))

    def commit(self, commit_index: int) -> None:
        """Answer every append whose entries are all at or below ``commit_index``."""
        waiters = self._waiters
        while waiters and waiters[0][0] <= commit_index:
            _, _, future, entries = waiters.popleft()
            if not future.done():
                future.set_result(entries)

    def expire(self, now: float) -> None:
        """Fail the appends whose deadline passed; deadlines grow along the deque (one fixed timeout)."""
        waiters = self._waiters
        while waiters and waiters[0][1] <= now:
            last, _, future, _ = waiters.popleft()
            if not future.done():
                future.set_exception(QuorumTimeoutError(f"entries up to index {last} not acknowledged by a "
                                                        "majority in time; they may still commit"))

    def fail_all(self, reason: str) -> None:
        waiters, self._waiters = self._waiters, deque()
        for last, _, future, _ in waiters:
            if not future.done():
                future.set_exception(LeadershipLostError(f"entries up to index {last}: {reason}; "
                                                         "they may still commit"))
