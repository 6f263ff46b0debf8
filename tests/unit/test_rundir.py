from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.rundir import (RunDir, create_run, find_run, finish_meta, iso_utc, new_meta, parse_iso_utc,
                            read_meta, update_latest, utc_stamp, write_atomic, write_meta)

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def test_stamp_is_utc_and_sortable() -> None:
    assert utc_stamp(T0) == "20260921T141320Z"
    assert utc_stamp(T0 + 1) > utc_stamp(T0)


def test_create_run_makes_layout_and_latest(tmp_path: Path) -> None:
    run = create_run("smoke", tmp_path, now=T0)
    assert run.path == tmp_path / "smoke" / "20260921T141320Z"
    assert run.name == "smoke" and run.stamp == "20260921T141320Z"
    for folder in (run.topology.parent, run.process_csv.parent, run.locust_dir):
        assert folder.is_dir()
    latest = tmp_path / "latest"
    assert latest.is_symlink() and not os.path.isabs(os.readlink(latest))
    assert latest.resolve() == run.path.resolve()


def test_paths_follow_the_contract() -> None:
    run = RunDir(Path("/r/x/20260101T000000Z"))
    rel = {p.relative_to(run.path).as_posix() for p in (
        run.meta, run.history, run.topology, run.process_csv, run.system_csv, run.locust_json,
        run.locust_stats_csv, run.locust_history_csv, run.locust_html, run.report)}
    assert rel == {"meta.json", "history.jsonl", "cluster/topology.json", "metrics/process.csv",
                   "metrics/system.csv", "locust/stats.json", "locust/stats_stats.csv",
                   "locust/stats_stats_history.csv", "locust/locust.html", "report.html"}
    # Locust appends .json / _stats.csv to the prefix it is given.
    assert Path(f"{run.locust_prefix}.json") == run.locust_json


def test_same_second_runs_get_suffixes_and_latest_moves(tmp_path: Path) -> None:
    runs = [create_run("r", tmp_path, now=T0) for _ in range(3)]
    assert [r.stamp for r in runs] == ["20260921T141320Z", "20260921T141320Z-2", "20260921T141320Z-3"]
    assert (tmp_path / "latest").resolve() == runs[-1].path.resolve()


@pytest.mark.parametrize("name", ["", "latest", "a/b", "../x", ".hidden", "sp ace"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        create_run(name, tmp_path)


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
    assert target.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode


def test_write_atomic_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write_atomic(target, "old")
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_latest_update_is_a_rename_under_concurrent_readers(tmp_path: Path) -> None:
    a, b = create_run("a", tmp_path, now=T0), create_run("b", tmp_path, now=T0)
    seen_missing = threading.Event()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if not (tmp_path / "latest").exists():
                seen_missing.set()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            update_latest(a if i % 2 else b, tmp_path)
    finally:
        stop.set()
        t.join(5)
    assert not seen_missing.is_set()


def test_meta_roundtrip_and_finish(tmp_path: Path) -> None:
    run = create_run("m", tmp_path, now=T0)
    meta = new_meta(run, seed=42, cluster={"groups": 2}, load={"users": 5}, started=T0)
    write_meta(run, meta)
    assert read_meta(run)["status"] == "running"
    done = finish_meta(run, "completed", finished=T0 + 61.5)
    on_disk = json.loads(run.meta.read_text())
    assert on_disk == done
    assert on_disk["name"] == "m" and on_disk["seed"] == 42 and on_disk["cluster"] == {"groups": 2}
    assert set(on_disk["host"]) == {"cpus", "mem_bytes", "platform"}
    assert on_disk["started_utc"] == "2026-09-21T14:13:20.000Z"
    assert parse_iso_utc(on_disk["finished_utc"]) == pytest.approx(T0 + 61.5, abs=0.001)


def test_read_meta_of_a_run_without_one(tmp_path: Path) -> None:
    assert read_meta(RunDir(tmp_path)) == {}


def test_parse_iso_utc_tolerates_garbage() -> None:
    assert parse_iso_utc(None) is None
    assert parse_iso_utc("yesterday") is None
    assert parse_iso_utc(iso_utc(T0)) == pytest.approx(T0)


def test_find_run_by_latest_name_and_path(tmp_path: Path) -> None:
    old = create_run("exp", tmp_path, now=T0)
    new = create_run("exp", tmp_path, now=T0 + 60)
    other = create_run("other", tmp_path, now=T0 + 30)
    for r in (old, new, other):
        write_meta(r, {"name": r.name})
    assert find_run("latest", tmp_path).path == other.path.resolve()
    assert find_run("exp", tmp_path).path == new.path.resolve()
    assert find_run(old.path, tmp_path).path == old.path.resolve()
    assert find_run(tmp_path / "exp", tmp_path).path == new.path.resolve()


def test_find_run_orders_same_second_suffixes_numerically(tmp_path: Path) -> None:
    runs = [create_run("s", tmp_path, now=T0) for _ in range(11)]
    for r in runs:
        write_meta(r, {})
    assert find_run("s", tmp_path).stamp == "20260921T141320Z-11"


def test_find_run_accepts_a_run_with_only_a_history(tmp_path: Path) -> None:
    run = create_run("h", tmp_path, now=T0)
    run.history.write_text('{"ts": 1, "mono": 1, "event": "run-started"}\n')
    assert find_run("h", tmp_path).path == run.path.resolve()


def test_find_run_names_what_it_tried(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        find_run("nope", tmp_path)
