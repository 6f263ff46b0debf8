from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import cluster.local.store as store_module
from cluster.local.commitlog import HEADER_SIZE
from cluster.local.records import NewMessage, pack_host, tags_code_of
from cluster.local.store import GetStatus, MessageStore
from cluster.local.storemeta import ConsumerOffsets, TopicConfig
from harness.remoting.message import decode_stored_messages, encode_properties, java_string_hash, offset_msg_id

BORN = pack_host("10.1.2.3", 40000)
STORE_HOST = "127.0.0.1:10911"


def message(body: bytes, tags: str | None = None, **props: str) -> NewMessage:
    properties = dict(props)
    if tags is not None:
        properties["TAGS"] = tags
    text = encode_properties(properties)
    return NewMessage(body=body, properties=text.encode(), born_timestamp=1234, tags_code=tags_code_of(text))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = MessageStore(tmp_path / "store", STORE_HOST, segment_size=4096)
    yield s
    s.close()


def test_put_and_get_round_trip(store: MessageStore) -> None:
    result = store.put_messages("T", 1, [message(b"one", "a", UNIQ_KEY="K1"), message(b"two", "b")], BORN)
    assert result.queue_offset == 0 and result.queue_id == 1
    got = store.get_messages("T", 1, 0, 32, 1 << 20)
    assert got.status is GetStatus.FOUND and got.count == 2
    assert (got.next_begin_offset, got.min_offset, got.max_offset) == (2, 0, 2)
    msgs = decode_stored_messages(got.body)
    assert [m.body for m in msgs] == [b"one", b"two"]
    assert msgs[0].properties == {"TAGS": "a", "UNIQ_KEY": "K1"}
    assert [m.queue_offset for m in msgs] == [0, 1]
    assert [m.commit_log_offset for m in msgs] == result.positions
    assert msgs[0].commit_log_offset == HEADER_SIZE
    assert str(msgs[0].born_host) == "10.1.2.3:40000" and str(msgs[0].store_host) == STORE_HOST
    assert msgs[0].offset_msg_id == offset_msg_id(msgs[0].store_host, result.positions[0])
    assert store.put_messages("T", 1, [message(b"three")], BORN).queue_offset == 2


def test_get_statuses(store: MessageStore) -> None:
    assert store.get_messages("T", 0, 0, 32, 1 << 20).status is GetStatus.NO_MATCHED_LOGIC_QUEUE
    store.put_messages("T", 0, [message(b"x")] * 3, BORN)
    cases = {-1: GetStatus.OFFSET_TOO_SMALL, 3: GetStatus.OFFSET_OVERFLOW_ONE, 9: GetStatus.OFFSET_OVERFLOW_BADLY}
    for offset, status in cases.items():
        got = store.get_messages("T", 0, offset, 32, 1 << 20)
        assert got.status is status and got.max_offset == 3
    assert store.get_messages("T", 0, 3, 32, 1 << 20).next_begin_offset == 3
    assert store.get_messages("T", 0, 9, 32, 1 << 20).next_begin_offset == 0


def test_limits_on_count_and_bytes(store: MessageStore) -> None:
    store.put_messages("T", 0, [message(b"x" * 100)] * 10, BORN)
    assert store.get_messages("T", 0, 0, 4, 1 << 20).count == 4
    one = store.get_messages("T", 0, 0, 32, 1).count
    assert one == 1  # the first message always comes
    got = store.get_messages("T", 0, 2, 32, 400)
    assert got.count == len(decode_stored_messages(got.body)) and got.next_begin_offset == 2 + got.count


def test_tag_filter(store: MessageStore) -> None:
    store.put_messages("T", 0, [message(b"a1", "A"), message(b"b1", "B"), message(b"none"),
                                message(b"a2", "A")], BORN)
    only_a = frozenset({java_string_hash("A")})
    got = store.get_messages("T", 0, 0, 32, 1 << 20, only_a)
    assert [m.body for m in decode_stored_messages(got.body)] == [b"a1", b"a2"]
    assert got.next_begin_offset == 4
    got = store.get_messages("T", 0, 1, 2, 1 << 20, frozenset({java_string_hash("C")}))
    assert got.status is GetStatus.NO_MATCHED_MESSAGE and got.next_begin_offset == 4


def test_consume_queues_survive_reopen_and_are_rebuilt(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST, segment_size=2048)
    for i in range(50):
        s.put_messages("T", i % 3, [message(f"m{i}".encode(), "A" if i % 2 else "B")], BORN)
    before = {q: s.get_messages("T", q, 0, 32, 1 << 20).body for q in range(3)}
    s.close()
    shutil.rmtree(tmp_path / "consumequeue")
    s = MessageStore(tmp_path, STORE_HOST, segment_size=2048)
    assert {q: s.get_messages("T", q, 0, 32, 1 << 20).body for q in range(3)} == before
    assert s.put_messages("T", 0, [message(b"next")], BORN).queue_offset == 17
    s.close()


def test_lagging_consume_queue_is_redispatched(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST)
    s.put_messages("T", 0, [message(b"%d" % i) for i in range(10)], BORN)
    s._queues[("T", 0)].truncate(6)  # as if the last units never reached the disk
    s.close()
    s = MessageStore(tmp_path, STORE_HOST)
    assert s.max_offset("T", 0) == 10
    s.close()


def test_consume_queue_ahead_of_a_torn_log_is_repaired(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST)
    positions = s.put_messages("T", 0, [message(b"%d" % i) for i in range(10)], BORN).positions
    s.close()
    segment = next((tmp_path / "commitlog").iterdir())
    with open(segment, "r+b") as fh:  # tear entry 8 (queue offset 7): CRC mismatch
        fh.seek(positions[7] + 40)
        fh.write(b"\xde\xad")
    s = MessageStore(tmp_path, STORE_HOST)
    assert s.max_offset("T", 0) == 7 and s.commitlog.last_index == 7
    assert s.put_messages("T", 0, [message(b"again")], BORN).queue_offset == 7
    s.close()


def test_uncommitted_entries_stay_invisible(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST, auto_commit=False)
    s.term = 3
    r1 = s.put_messages("T", 0, [message(b"a"), message(b"b")], BORN)
    r2 = s.put_messages("T", 0, [message(b"c")], BORN)
    assert r2.queue_offset == 2 and s.max_offset("T", 0) == 0
    assert s.commitlog.term_at(r2.last_index) == 3
    s.dispatch_committed(r1.last_index)
    assert s.max_offset("T", 0) == 2
    s.commitlog.truncate_from(r2.last_index)  # a new leader overrides the uncommitted entry
    s.rebuild_offsets()
    assert s.put_messages("T", 0, [message(b"c2")], BORN).queue_offset == 2
    s.dispatch_committed(10)
    got = s.get_messages("T", 0, 0, 32, 1 << 20)
    assert [m.body for m in decode_stored_messages(got.body)] == [b"a", b"b", b"c2"]
    s.close()


def test_reopen_without_auto_commit_keeps_the_uncommitted_tail_out(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST, auto_commit=False)
    r = s.put_messages("T", 0, [message(b"a"), message(b"b"), message(b"c")], BORN)
    s.dispatch_committed(r.last_index - 1)
    s.close()
    s = MessageStore(tmp_path, STORE_HOST, auto_commit=False)
    assert s.max_offset("T", 0) == 2 and s.dispatched_index == 2
    assert s.put_messages("T", 0, [message(b"d")], BORN).queue_offset == 3
    s.close()


def test_follower_dispatch_matches_the_leader(tmp_path: Path) -> None:
    leader = MessageStore(tmp_path / "leader", STORE_HOST, auto_commit=False)
    follower = MessageStore(tmp_path / "follower", STORE_HOST, auto_commit=False)
    for i in range(12):
        leader.put_messages("T", i % 2, [message(b"m%d" % i, "A" if i % 3 else "B")], BORN)
    entries = leader.commitlog.entries_from(1, 1 << 20)
    follower.commitlog.append_entries([(e.index, e.term, e.payload) for e in entries])
    leader.dispatch_committed(12)
    follower.dispatch_committed(12)
    for q in range(2):
        for codes in (None, frozenset({java_string_hash("A")})):
            assert (follower.get_messages("T", q, 0, 32, 1 << 20, codes).body
                    == leader.get_messages("T", q, 0, 32, 1 << 20, codes).body)
    follower.rebuild_offsets()
    assert follower.put_messages("T", 1, [message(b"x")], BORN).queue_offset == 6
    leader.close()
    follower.close()


def test_search_offset_by_store_time(store: MessageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1000.0, 2000.0, 2000.0, 3000.0, 4000.0])
    monkeypatch.setattr(store_module.time, "time", lambda: next(clock))
    for i in range(5):
        store.put_messages("T", 0, [message(b"%d" % i)], BORN)
    assert store.store_time_at("T", 0, 0) == 1_000_000
    assert store.search_offset("T", 0, 0) == 0
    assert store.search_offset("T", 0, 2_000_000) == 1
    assert store.search_offset("T", 0, 2_500_000) == 3
    assert store.search_offset("T", 0, 9_000_000) == 5
    assert store.search_offset("Nope", 0, 1) == 0 and store.store_time_at("T", 0, 5) == -1


def test_read_message_by_position(store: MessageStore) -> None:
    result = store.put_messages("T", 0, [message(b"hello")], BORN)
    record = store.read_message(result.positions[0])
    assert record is not None and decode_stored_messages(record)[0].body == b"hello"
    assert store.read_message(result.positions[0] + 1) is None


def test_batch_and_large_topic_names(store: MessageStore) -> None:
    topic = "t" * 200  # over 127 bytes: V2 magic with a 2-byte topic length
    store.put_messages(topic, 0, [message(b"x", "A")], BORN)
    got = store.get_messages(topic, 0, 0, 32, 1 << 20)
    assert decode_stored_messages(got.body)[0].topic == topic


def test_consumer_offsets_and_topics_persist(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST)
    s.offsets.commit("g", "T", 3, 42)
    s.topics.put(TopicConfig("T", 2, 2, 6))
    version = s.topics.data_version()
    s.close()
    s = MessageStore(tmp_path, STORE_HOST)
    assert s.offsets.query("g", "T", 3) == 42 and s.offsets.query("g", "T", 0) == -1
    assert s.topics.get("T") == TopicConfig("T", 2, 2, 6) and s.topics.data_version() == version
    assert not list((tmp_path / "config").glob("*.tmp"))
    s.close()


def test_put_tps_counters(store: MessageStore) -> None:
    store.put_messages("T", 0, [message(b"x")] * 3, BORN)
    store.get_messages("T", 0, 0, 32, 1 << 20)
    assert store.put_stats.total == 3 and store.get_stats.total == 3
    assert len(store.put_stats.tps_string().split()) == 3


def test_consumer_offsets_survive_a_kill_through_the_journal(tmp_path: Path) -> None:
    s = MessageStore(tmp_path, STORE_HOST)
    s.offsets.commit("g", "T", 0, 5)
    s.offsets.persist()
    s.offsets.commit("g", "T", 0, 9)  # journaled only, as if the process died before the next snapshot
    s.offsets.commit("g", "U", 1, 3)
    with open(s.offsets.journal_path, "ab") as fh:
        fh.write(b'["g@T", 0, 1')  # a line torn mid-write
    offsets = ConsumerOffsets(s.offsets.path)
    assert offsets.query("g", "T", 0) == 9 and offsets.query("g", "U", 1) == 3
    offsets.close()
    s.close()


def test_raft_noop_entries_and_an_injected_appender(tmp_path: Path) -> None:
    """A Raft leader appends through its node (here: a stand-in) and writes empty no-op entries."""
    s = MessageStore(tmp_path, STORE_HOST, auto_commit=False)
    s.commitlog.append([b""], term=2)  # the new leader's no-op
    r = s.put_messages("T", 0, [message(b"a")], BORN, append=lambda p: s.commitlog.append(p, 2))
    assert r.last_index == 2 and s.commitlog.term_at(2) == 2
    s.commitlog.append([b""], term=3)

    def refused(payloads: list[bytes]) -> list:  # type: ignore[type-arg]
        raise RuntimeError("not the leader")

    with pytest.raises(RuntimeError):
        s.put_messages("T", 0, [message(b"lost")], BORN, append=refused)
    assert s.put_messages("T", 0, [message(b"b")], BORN).queue_offset == 1  # the refused one used no offset
    s.dispatch_committed(4)
    s.rebuild_offsets()
    assert [m.body for m in decode_stored_messages(s.get_messages("T", 0, 0, 32, 1 << 20).body)] == [b"a", b"b"]
    s.close()
    s = MessageStore(tmp_path, STORE_HOST)
    assert s.max_offset("T", 0) == 2 and s.put_messages("T", 0, [message(b"c")], BORN).queue_offset == 2
    s.close()


def test_dispatch_checkpoint_covers_a_queue_that_lost_its_tail(tmp_path: Path) -> None:
    """Power loss: a queue loses units written after the last flush while another queue kept them."""
    s = MessageStore(tmp_path, STORE_HOST)
    for i in range(6):
        s.put_messages("T", i % 2, [message(b"early%d" % i)], BORN)
    s.flush()  # fsyncs, then records the dispatch checkpoint
    for i in range(6):
        s.put_messages("T", i % 2, [message(b"late%d" % i)], BORN)
    s._queues[("T", 0)].truncate(3)  # queue 0's late units never reached the disk; queue 1's did
    reopened = MessageStore(tmp_path, STORE_HOST)  # the crashed instance is simply abandoned
    bodies = [m.body for m in decode_stored_messages(reopened.get_messages("T", 0, 0, 32, 1 << 20).body)]
    assert bodies == [b"early0", b"early2", b"early4", b"late0", b"late2", b"late4"]
    assert reopened.max_offset("T", 1) == 6
    reopened.close()
    s.close()
