"""Meta entries (topics, consumer offsets) in the replicated log, and how the store treats them."""
from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.local import broker_meta as meta
from cluster.local.broker_raft import failure_of, slave_broker_id
from cluster.local.commitlog import Entry
from cluster.local.dledger_pending import LeadershipLostError, QuorumTimeoutError
from cluster.local.records import NewMessage, pack_host
from cluster.local.store import MessageStore
from cluster.local.storemeta import ConsumerOffsets, TopicConfig
from harness.remoting.codes import ResponseCode

BORN = pack_host("10.1.2.3", 40000)


def test_meta_entries_round_trip_and_never_look_like_records() -> None:
    topic = TopicConfig("T", 4, 4, 6)
    payload = meta.topic_entry(topic)
    assert meta.is_meta(payload) and TopicConfig.from_json(meta.decode(payload)["topic"]) == topic
    offsets = meta.decode(meta.offsets_entry({("g@T", 1): 7, ("g@T", 2): 9}))["offsets"]
    assert sorted(map(tuple, offsets)) == [("g@T", 1, 7), ("g@T", 2, 9)]
    assert struct.unpack_from(">i", payload)[0] == 0  # a record's first field is its positive total size
    assert not meta.is_meta(b"") and not meta.is_meta(b"\x00\x00\x00\x00other")
    with pytest.raises(ValueError):
        meta.decode(b"\x00\x00\x01\x00not meta")


def test_store_applies_meta_entries_on_commit_in_log_order(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "s", "127.0.0.1:10911", segment_size=4096, auto_commit=False)
    applied: list[int] = []
    store.on_meta = lambda entry: applied.append(entry.index)
    try:
        store.commitlog.append([meta.topic_entry(TopicConfig("T", 1, 1))], 1)
        store.put_messages("T", 0, [NewMessage(b"m", b"")], BORN)
        store.commitlog.append([b"", meta.offsets_entry({("g@T", 0): 1})], 1)
        store.rebuild_offsets()  # a truncation or restart re-reads the tail: meta entries are not messages
        assert applied == [] and store.max_offset("T", 0) == 0
        store.dispatch_committed(2)
        assert applied == [1] and store.max_offset("T", 0) == 1
        store.dispatch_committed(4)
        assert applied == [1, 4]
        assert store.read_message(store.commitlog.position_of(1)) is None  # not a message by offset
    finally:
        store.close()


def test_offsets_apply_does_not_report_changes_but_commit_does(tmp_path: Path) -> None:
    offsets = ConsumerOffsets(tmp_path / "consumerOffset.json")
    seen: list[tuple[str, int, int]] = []
    offsets.on_change = lambda *change: seen.append(change)
    offsets.apply("g@T", 0, 5)
    offsets.commit("g", "T", 0, 5)  # unchanged: nothing to replicate
    offsets.commit("g", "T", 0, 6)
    assert seen == [("g@T", 0, 6)] and offsets.query("g", "T", 0) == 6
    offsets.close()
    assert ConsumerOffsets(tmp_path / "consumerOffset.json").query("g", "T", 0) == 6


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_offset_sync_batches_changes_and_answers_waiters_after_the_commit() -> None:
    async def scenario() -> None:
        appended: list[dict[str, object]] = []
        commits: list[asyncio.Future[tuple[int, str] | None]] = []
        master = {"yes": True}

        def append(payload: bytes) -> asyncio.Future[tuple[int, str] | None]:
            appended.append(meta.decode(payload))
            commits.append(asyncio.get_running_loop().create_future())
            return commits[-1]

        sync = meta.OffsetSync(append, 0.01, lambda: master["yes"])
        sync.start()
        for offset in (1, 2, 3):
            sync.changed("g@T", 0, offset)
        sync.changed("g@T", 1, 9)
        waiter = sync.flushed()
        await until(lambda: appended)
        assert appended == [{"offsets": [["g@T", 0, 3], ["g@T", 1, 9]]}] and not waiter.done()
        commits[0].set_result(None)
        assert await asyncio.wait_for(waiter, 1) is None
        sync.changed("g@T", 0, 4)
        await until(lambda: len(commits) == 2)
        commits[1].set_result((ResponseCode.SYSTEM_ERROR, "[PC_SYNCHRONIZED]quorum timeout"))
        await until(lambda: len(appended) == 3)  # ambiguous while still the master: sent again
        assert appended[2] == {"offsets": [["g@T", 0, 4]]}
        commits[2].set_result(None)
        master["yes"] = False
        sync.drop()
        assert (await asyncio.wait_for(sync.flushed(), 1)) is None  # nothing left to send
        await sync.stop()

    asyncio.run(scenario())


def test_send_outcomes_and_slave_ids() -> None:
    async def outcomes() -> list[tuple[int, str] | None]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[list[Entry]]] = [loop.create_future() for _ in range(3)]
        futures[0].set_result([])
        futures[1].set_exception(QuorumTimeoutError("slow"))
        futures[2].set_exception(LeadershipLostError("deposed"))
        return [failure_of(f) for f in futures]

    ok, timeout, lost = asyncio.run(outcomes())
    assert ok is None
    for failure in (timeout, lost):
        assert failure is not None and failure[0] == ResponseCode.SYSTEM_ERROR
        assert failure[1].startswith("[PC_SYNCHRONIZED]")
    assert [slave_broker_id(s) for s in ("n0", "n1", "n2")] == [1, 2, 3]
