"""The pure decisions of the Raft group: who may get a vote, what is committed, where replication resumes.

No I/O and no clock here: every function takes what it needs as arguments, so the unit tests can table-test
each rule (tests/unit/test_dledger_rules.py) without a socket or a commit log.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

TermAt = Callable[[int], "int | None"]


def majority(cluster_size: int) -> int:
    """Votes (or acks) needed out of ``cluster_size`` replicas, the node itself included."""
    return cluster_size // 2 + 1


def log_up_to_date(cand_last_term: int, cand_last_index: int, my_last_term: int, my_last_index: int) -> bool:
    """Raft §5.4.1: a candidate's log is at least as up to date as ours if its last term is higher, or the
    last terms are equal and its log is at least as long."""
    if cand_last_term != my_last_term:
        return cand_last_term > my_last_term
    return cand_last_index >= my_last_index


def grant_vote(my_term: int, voted_for: str | None, cand_term: int, cand_id: str, up_to_date: bool) -> bool:
    """Whether to vote for ``cand_id`` in ``cand_term``. ``my_term`` and ``voted_for`` are the voter's state
    *after* it has adopted a higher candidate term (which clears its vote)."""
    if cand_term < my_term:
        return False
    if voted_for not in (None, cand_id):
        return False  # one vote per term: the persisted vote already went to someone else
    return up_to_date


def grant_pre_vote(my_term: int, proposed_term: int, up_to_date: bool, leader_fresh: bool) -> bool:
    """Pre-vote (Raft thesis §9.6): would we vote in ``proposed_term``? Nothing is persisted or changed.

    A voter that still hears from a live leader refuses, so a node cut off from the group cannot raise
    its term again and again and then depose a healthy leader when the partition heals."""
    return not leader_fresh and proposed_term >= my_term and up_to_date


def quorum_match(match_indexes: Iterable[int]) -> int:
    """The highest index stored on a majority: the median from the top of every replica's match index
    (the leader's own last index included)."""
    ordered = sorted(match_indexes, reverse=True)
    return ordered[len(ordered) // 2]


def next_commit(match_indexes: Iterable[int], term_at: TermAt, current_term: int, commit_index: int) -> int:
    """The new commit index of a leader. Raft §5.4.2: only an entry of the leader's current term is
    committed by counting replicas; older entries commit with it, never on their own count."""
    candidate = quorum_match(match_indexes)
    if candidate > commit_index and term_at(candidate) == current_term:
        return candidate
    return commit_index


def conflict_hint(prev_index: int, last_index: int, commit_index: int, term_at: TermAt) -> int:
    """Where a follower asks the leader to resume after a failed (prev_index, prev_term) check.

    If the follower's log is too short, the answer is its end. Otherwise the follower holds a different
    term T at prev_index: the leader should go back to the first entry of T (terms never decrease along a
    log, so a binary search finds it), skipping a whole divergent term per round trip instead of one entry.
    Committed entries always match the leader, so the hint never goes below commit_index + 1."""
    if prev_index > last_index:
        return last_index + 1
    conflict_term = term_at(prev_index)
    lo, hi = max(commit_index + 1, 1), prev_index
    while lo < hi:
        mid = (lo + hi) // 2
        term = term_at(mid)
        if term is not None and conflict_term is not None and term >= conflict_term:
            hi = mid
        else:
            lo = mid + 1
    return lo


def next_index_after_reject(hint: int, match_index: int, next_index: int, last_index: int) -> int:
    """The leader's next index for a follower that rejected a push with ``hint``.

    Never beyond the leader's own end, never back over what the follower is known to hold unless the
    follower says so (a hint below match means the follower lost data, and then we resend from the hint)."""
    resume = min(hint, next_index, last_index + 1)
    return max(resume, 1)


def election_timeout(heartbeat_interval: float, max_heartbeat_leak: int) -> float:
    """How long a follower waits without a leader heartbeat before standing for election (DLedger:
    maxHeartBeatLeak x heartBeatTimeIntervalMs) and how long a leader keeps leading without a quorum."""
    return heartbeat_interval * max_heartbeat_leak


def leader_fresh_window(heartbeat_interval: float, max_heartbeat_leak: int) -> float:
    """A voter that heard from its leader within this window refuses pre-votes. It is one heartbeat
    shorter than the election timeout, so the followers of a leader that really died (and which all lost
    it at the same moment) agree it is gone by the time the first of them asks."""
    return heartbeat_interval * max(1, max_heartbeat_leak - 1)


def has_quorum(ack_ages: Iterable[float], window: float, cluster_size: int) -> bool:
    """Whether a leader heard from a majority (itself included) within ``window`` seconds."""
    heard = 1 + sum(1 for age in ack_ages if age <= window)
    return heard >= majority(cluster_size)
