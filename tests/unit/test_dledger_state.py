"""Persisted term/vote, the leader's tail cache and the pending-append queue."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cluster.local.commitlog import Entry
from cluster.local.dledger_pending import LeadershipLostError, PendingAppends, QuorumTimeoutError
from cluster.local.dledger_state import STATE_FILE, PersistentState, TailCache, TermVote


def test_term_and_vote_survive_a_restart(tmp_path: Path) -> None:
    state = PersistentState(tmp_path / "raft")
    assert state.load() == TermVote(0, None)
    state.save(3, "n1")
    state.save(4, None)
    assert PersistentState(tmp_path / "raft").load() == TermVote(4, None)
    state.save(4, "n2")
    assert PersistentState(tmp_path / "raft").load() == TermVote(4, "n2")
    assert sorted(p.name for p in (tmp_path / "raft").iterdir()) == [STATE_FILE]  # no temp file left


def entries(first: int, count: int, size: int = 10) -> list[Entry]:
    return [Entry(i, 1, bytes(size), i * 100) for i in range(first, first + count)]


def test_tail_cache_serves_recent_entries_and_evicts_old_ones() -> None:
    cache = TailCache(max_bytes=20 * 74)  # 20 entries of 10 bytes (+64 bookkeeping each)
    cache.add(entries(1, 50))
    assert cache.get(1, 1 << 20, 100) is None  # evicted: ask the log
    got = cache.get(40, 1 << 20, 5)
    assert got is not None and [e.index for e in got] == [40, 41, 42, 43, 44]
    got = cache.get(45, 25, 100)
    assert got is not None and [e.index for e in got] == [45, 46]  # bounded by bytes
    assert cache.get(51, 1 << 20, 10) is None
    cache.truncate_from(48)
    got = cache.get(46, 1 << 20, 10)
    assert got is not None and [e.index for e in got] == [46, 47]
    cache.add(entries(60, 1))  # not contiguous: the cache starts over
    assert cache.get(46, 1 << 20, 10) is None


def test_pending_appends_answer_in_log_order() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        pending = PendingAppends()
        futures = [loop.create_future() for _ in range(4)]
        for i, future in enumerate(futures):
            pending.add(entries(i * 2 + 1, 2), deadline=float(i), future=future)
        pending.commit(4)  # entries 1..4: the first two appends
        assert [f.done() for f in futures] == [True, True, False, False]
        assert [e.index for e in futures[1].result()] == [3, 4]
        pending.expire(now=2.0)  # deadline 2.0 of the third append has passed
        assert isinstance(futures[2].exception(), QuorumTimeoutError)
        pending.fail_all("stepped down")
        assert isinstance(futures[3].exception(), LeadershipLostError)
        assert len(pending) == 0
    asyncio.run(body())


def test_leadership_lost_is_an_ambiguous_quorum_timeout() -> None:
    with pytest.raises(QuorumTimeoutError):
        raise LeadershipLostError("x")
