from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.local.commitlog import HEADER_SIZE, CommitLog, CommitLogError


def payloads(n: int, size: int = 100) -> list[bytes]:
    return [bytes([i % 251]) * (size + i % 7) for i in range(n)]


def test_empty_log(tmp_path: Path) -> None:
    log = CommitLog(tmp_path)
    assert (log.last_index, log.last_term, log.end_position) == (0, 0, 0)
    assert log.term_at(0) == 0 and log.term_at(1) is None
    assert log.position_of_next_payload() == HEADER_SIZE
    assert log.entries_from(1, 1 << 20) == []
    log.close()


def test_append_read_and_positions(tmp_path: Path) -> None:
    log = CommitLog(tmp_path)
    expected = log.position_of_next_payload()
    entries = log.append([b"alpha", b"beta"], term=3)
    assert [e.index for e in entries] == [1, 2]
    assert entries[0].position == expected
    assert entries[1].position == expected + len(b"alpha") + HEADER_SIZE
    assert log.read(entries[1].position, 4) == b"beta"
    assert log.term_at(2) == 3 and log.last_term == 3
    assert log.index_at_position(entries[1].position) == 2
    assert log.index_at_position(entries[1].position + 1) is None
    with pytest.raises(CommitLogError):
        log.read(log.end_position - 2, 10)
    log.close()


def test_segments_roll_at_entry_boundaries_and_reopen(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=1000)
    data = payloads(60)
    entries = log.append(data, term=1)
    assert len([p for p in tmp_path.iterdir()]) > 3
    log.close()
    log = CommitLog(tmp_path, segment_size=1000)
    assert log.last_index == 60
    for entry, payload in zip(entries, data):
        assert log.read(entry.position, len(payload)) == payload
        assert log.entry(entry.index).payload == payload
    log.close()


def test_entry_bigger_than_a_segment(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=256)
    big = os.urandom(1000)
    log.append([b"small", big, b"after"], term=1)
    log.close()
    log = CommitLog(tmp_path, segment_size=256)
    assert [e.payload for e in log.entries_from(1, 1 << 20)] == [b"small", big, b"after"]
    log.close()


def test_terms_are_tracked_in_runs(tmp_path: Path) -> None:
    log = CommitLog(tmp_path)
    log.append([b"a", b"b"], term=1)
    log.append([b"c"], term=2)
    log.append_entries([(4, 2, b"d"), (5, 5, b"e")])
    assert [log.term_at(i) for i in range(0, 7)] == [0, 1, 1, 2, 2, 5, None]
    log.close()
    log = CommitLog(tmp_path)
    assert [log.term_at(i) for i in range(1, 6)] == [1, 1, 2, 2, 5]
    log.close()


def test_append_entries_must_be_contiguous(tmp_path: Path) -> None:
    log = CommitLog(tmp_path)
    log.append([b"a"], term=1)
    with pytest.raises(CommitLogError):
        log.append_entries([(3, 1, b"c")])
    log.close()


def test_entries_from_respects_bytes_and_count(tmp_path: Path) -> None:
    log = CommitLog(tmp_path)
    log.append([b"x" * 100] * 10, term=1)
    assert len(log.entries_from(1, 250)) == 2
    assert len(log.entries_from(1, 10)) == 1  # the first entry always comes, whatever its size
    assert [e.index for e in log.entries_from(4, 1 << 20, max_count=3)] == [4, 5, 6]
    assert log.entries_from(11, 1 << 20) == []
    log.close()


def test_truncate_from_drops_the_suffix_and_its_segments(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=500)
    log.append(payloads(30), term=1)
    cut_position = log.position_of(11) - HEADER_SIZE
    log.truncate_from(11)
    assert log.last_index == 10 and log.end_position == cut_position
    assert log.term_at(11) is None
    new = log.append([b"new-11"], term=2)
    assert new[0].index == 11 and new[0].position == cut_position + HEADER_SIZE
    log.close()
    log = CommitLog(tmp_path, segment_size=500)
    assert log.last_index == 11 and log.entry(11).payload == b"new-11" and log.term_at(11) == 2
    log.close()


def test_truncated_entries_never_come_back(tmp_path: Path) -> None:
    """Same-size replacement entries must not let stale entries behind them be recovered."""
    log = CommitLog(tmp_path)
    log.append([b"a" * 50, b"b" * 50, b"c" * 50], term=1)
    log.truncate_from(2)
    log.append([b"B" * 50], term=2)
    log.close()
    log = CommitLog(tmp_path)
    assert log.last_index == 2 and log.entry(2).payload == b"B" * 50
    log.close()


def test_truncate_to_empty(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=300)
    log.append(payloads(10), term=1)
    log.truncate_from(1)
    assert (log.last_index, log.end_position, log.last_term) == (0, 0, 0)
    log.append([b"fresh"], term=4)
    log.close()
    log = CommitLog(tmp_path, segment_size=300)
    assert log.last_index == 1 and log.entry(1).payload == b"fresh"
    log.close()


def _corrupt(tmp_path: Path, position: int, data: bytes) -> None:
    segment = sorted(p for p in tmp_path.iterdir() if p.name.isdigit())[-1]
    offset = position - int(segment.name)
    with open(segment, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize("where,garbage", [
    ("payload", b"\xff\xff"),         # crc mismatch
    ("magic", b"\x00\x00\x00\x01"),  # bad magic
    ("size", b"\x7f\xff\xff\xff"),   # size past the segment
])
def test_recovery_truncates_a_torn_tail(tmp_path: Path, where: str, garbage: bytes) -> None:
    log = CommitLog(tmp_path)
    entries = log.append(payloads(5), term=1)
    log.close()
    header = entries[3].position - HEADER_SIZE
    offset = {"payload": entries[3].position + 3, "magic": header, "size": header + 4}[where]
    _corrupt(tmp_path, offset, garbage)
    log = CommitLog(tmp_path)
    assert log.last_index == 3 and log.end_position == header
    appended = log.append([b"next"], term=2)
    assert appended[0].index == 4 and appended[0].position == entries[3].position
    log.close()


def test_positions_are_identical_on_two_replicas(tmp_path: Path) -> None:
    """A follower fed the same entries (with another segment size) computes the leader's positions."""
    leader = CommitLog(tmp_path / "leader", segment_size=700)
    follower = CommitLog(tmp_path / "follower", segment_size=2000)
    entries = leader.append(payloads(40), term=1) + leader.append([b"t2"] * 3, term=2)
    for start in range(1, leader.last_index + 1, 7):
        batch = leader.entries_from(start, 1 << 20, max_count=7)
        follower.append_entries([(e.index, e.term, e.payload) for e in batch])
    assert [follower.position_of(e.index) for e in entries] == [e.position for e in entries]
    assert follower.end_position == leader.end_position
    assert follower.position_of_next_payload() == leader.position_of_next_payload()
    leader.close()
    follower.close()


def test_flush_is_safe_after_truncate(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=300)
    log.append(payloads(20), term=1)
    log.flush()
    log.truncate_from(2)
    log.append([b"x"], term=1)
    log.flush()
    log.close()


def test_an_empty_segment_file_left_by_a_crash_is_ignored(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, segment_size=300)
    log.append([b"a"], term=1)
    end = log.end_position
    log.close()
    (tmp_path / f"{end:020d}").touch()
    log = CommitLog(tmp_path, segment_size=300)
    assert log.last_index == 1 and log.append([b"b"], term=1)[0].index == 2
    log.close()
