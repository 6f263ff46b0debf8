"""Table tests of the pure Raft rules: vote granting, log comparison, commit index, back-off, quorum."""
from __future__ import annotations

import pytest

from cluster.local import dledger_rules as rules


def term_at_from(terms: list[int]):  # type: ignore[no-untyped-def]
    """A term_at over a log whose entry i (from 1) has terms[i - 1]; 0 at index 0, None past the end."""
    return lambda i: 0 if i == 0 else (terms[i - 1] if 1 <= i <= len(terms) else None)


@pytest.mark.parametrize("cand, mine, expected", [
    ((3, 10), (2, 50), True),    # higher last term wins whatever the length
    ((2, 50), (3, 10), False),
    ((3, 10), (3, 10), True),    # equal logs are up to date
    ((3, 11), (3, 10), True),
    ((3, 9), (3, 10), False),    # same last term, shorter log
    ((0, 0), (0, 0), True),      # two empty logs
    ((0, 0), (1, 1), False),
])
def test_log_up_to_date(cand: tuple[int, int], mine: tuple[int, int], expected: bool) -> None:
    assert rules.log_up_to_date(*cand, *mine) is expected


@pytest.mark.parametrize("my_term, voted_for, cand_term, cand, up_to_date, expected", [
    (5, None, 5, "n1", True, True),
    (5, "n1", 5, "n1", True, True),      # the same candidate asking again gets the same answer
    (5, "n2", 5, "n1", True, False),     # one vote per term
    (5, None, 4, "n1", True, False),     # stale candidate term
    (5, None, 5, "n1", False, False),    # candidate log behind ours
    (6, None, 6, "n1", True, True),      # after adopting the candidate's higher term the vote is free
])
def test_grant_vote(my_term: int, voted_for: str | None, cand_term: int, cand: str, up_to_date: bool,
                    expected: bool) -> None:
    assert rules.grant_vote(my_term, voted_for, cand_term, cand, up_to_date) is expected


@pytest.mark.parametrize("my_term, proposed, up_to_date, fresh, expected", [
    (5, 6, True, False, True),
    (5, 6, True, True, False),   # we still hear a leader: a partitioned node may not disturb it
    (5, 6, False, False, False),
    (7, 6, True, False, False),  # proposed term already behind ours
    (6, 6, True, False, True),
])
def test_grant_pre_vote(my_term: int, proposed: int, up_to_date: bool, fresh: bool, expected: bool) -> None:
    assert rules.grant_pre_vote(my_term, proposed, up_to_date, fresh) is expected


@pytest.mark.parametrize("matches, expected", [
    ([10], 10), ([10, 4], 4), ([10, 4, 7], 7), ([10, 10, 0], 10), ([9, 3, 5, 7], 5), ([8, 1, 2, 3, 8], 3),
])
def test_quorum_match_is_the_highest_index_a_majority_holds(matches: list[int], expected: int) -> None:
    assert rules.quorum_match(matches) == expected
    assert sum(m >= expected for m in matches) >= rules.majority(len(matches))


def test_next_commit_counts_only_entries_of_the_current_term() -> None:
    term_at = term_at_from([1, 1, 2, 2, 3])
    # Entries 1..4 are on a majority but were written in older terms: not committed by counting (§5.4.2).
    assert rules.next_commit([5, 4, 2], term_at, current_term=3, commit_index=1) == 1
    # Once the current term's entry 5 is on a majority, everything up to it commits.
    assert rules.next_commit([5, 5, 2], term_at, current_term=3, commit_index=1) == 5
    # Never backwards.
    assert rules.next_commit([5, 1, 1], term_at, current_term=3, commit_index=5) == 5


@pytest.mark.parametrize("terms, prev_index, commit, expected", [
    ([1, 1, 1], 7, 0, 4),              # follower log too short: resume at its end
    ([1, 1, 2, 2, 2, 2], 6, 0, 3),     # conflicting term 2 started at index 3
    ([1, 1, 2, 2, 2, 2], 6, 4, 5),     # ... but never at or below the commit index
    ([1, 2, 3, 3], 4, 0, 3),
    ([5], 1, 0, 1),
    ([1, 1, 1, 1], 2, 0, 1),
])
def test_conflict_hint_skips_a_whole_term(terms: list[int], prev_index: int, commit: int, expected: int) -> None:
    assert rules.conflict_hint(prev_index, len(terms), commit, term_at_from(terms)) == expected


@pytest.mark.parametrize("hint, match, next_index, last, expected", [
    (5, 3, 20, 30, 5),    # resume at the follower's hint
    (25, 3, 20, 30, 20),  # a hint beyond what we would send next is clamped to next_index
    (50, 3, 60, 30, 31),  # never beyond our own end
    (0, 0, 5, 10, 1),     # indexes start at 1
    (2, 6, 9, 10, 2),     # below match: the follower lost data; resend from its hint
])
def test_next_index_after_reject(hint: int, match: int, next_index: int, last: int, expected: int) -> None:
    assert rules.next_index_after_reject(hint, match, next_index, last) == expected


def test_majority_and_quorum_windows() -> None:
    assert [rules.majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert rules.has_quorum([], window=0.6, cluster_size=1)
    assert rules.has_quorum([0.1, 5.0], window=0.6, cluster_size=3)
    assert not rules.has_quorum([0.7, 5.0], window=0.6, cluster_size=3)
    assert rules.election_timeout(2.0, 3) == 6.0  # DLedger: 3 missed heartbeats of 2 s
    assert rules.leader_fresh_window(0.2, 3) == pytest.approx(0.4)
