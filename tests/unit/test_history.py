from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from harness.history import History, HistoryError, read_history


def test_record_writes_ts_mono_event_and_fields(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with History(path, clock=lambda: 100.5, mono=lambda: 7.25) as h:
        written = h.record("fault-inject", fault="kill-master", targets=["broker-a-0"], where=Path("/x"))
    assert written == {"ts": 100.5, "mono": 7.25, "event": "fault-inject", "fault": "kill-master",
                       "targets": ["broker-a-0"], "where": Path("/x")}
    assert json.loads(path.read_text()) == {**written, "where": "/x"}


def test_each_line_is_flushed_before_close(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    h = History(path)
    h.record("run-started")
    assert [e["event"] for e in read_history(path)] == ["run-started"]  # visible while still open
    h.close()
    h.close()  # idempotent


def test_record_after_close_raises(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl")
    h.close()
    with pytest.raises(HistoryError, match="closed"):
        h.record("late")


def test_reserved_fields_are_refused(tmp_path: Path) -> None:
    with History(tmp_path / "h.jsonl") as h, pytest.raises(ValueError, match="reserved"):
        h.record("x", ts=1)


def test_appends_to_an_existing_history(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    for name in ("a", "b"):
        with History(path) as h:
            h.record(name)
    assert [e["event"] for e in read_history(path)] == ["a", "b"]


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with History(path) as h:
        def burst(n: int) -> None:
            for i in range(200):
                h.record("tick", writer=n, i=i, pad="x" * 300)

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    events = read_history(path)
    assert len(events) == 1600
    for n in range(8):  # each writer's own events stay in order
        assert [e["i"] for e in events if e["writer"] == n] == list(range(200))


def test_mono_is_monotonic_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with History(path) as h:
        for _ in range(50):
            h.record("e")
    monos = [e["mono"] for e in read_history(path)]
    assert monos == sorted(monos)


def test_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"ts":1,"mono":1,"event":"a"}\n{"ts":2,"mono":2,"event":"b"}\n{"ts":3,"mo')
    assert [e["event"] for e in read_history(path)] == ["a", "b"]


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"ts":1,"mono":1,"event":"a"}\n\n{"ts":2,"mono":2,"event":"b"}\n\n')
    assert [e["event"] for e in read_history(path)] == ["a", "b"]


@pytest.mark.parametrize("bad", ["garbage", "[1, 2]", '{"ts": 1}'])
def test_damage_before_the_last_line_raises(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(f'{{"ts":1,"mono":1,"event":"a"}}\n{bad}\n{{"ts":2,"mono":2,"event":"b"}}\n')
    with pytest.raises(HistoryError, match=":2:"):
        read_history(path)


def test_empty_file_reads_as_no_events(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text("")
    assert read_history(path) == []
