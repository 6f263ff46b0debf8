"""The rmqh commands end to end, as a user runs them: real node processes, real Locust, real files."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.local.cluster import LocalCluster
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
RMQH = [sys.executable, "-m", "harness.cli"]
#: The default topology: two groups of one master and two slaves.
BROKERS = [f"broker-{g}-{r}" for g in "ab" for r in range(3)]


def rmqh(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RMQH_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([*RMQH, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home)


@pytest.fixture
def home(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield tmp_path
    LocalCluster(tmp_path / "cluster").down(timeout=3)  # a failed test must not leak nodes


def test_up_status_down(home: Path) -> None:
    up = rmqh(home, "up", "--profile", "fast")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((home / "cluster" / "state.json").read_text())
    assert [n["node_id"] for n in state["nodes"]] == ["ns-0", "ns-1", "ns-2", *BROKERS]

    def all_registered() -> bool:
        out = rmqh(home, "status").stdout
        return out.count("3/3") == 6 and "master" in out and "replication (raft" in out
    wait_until(all_registered, timeout=30, interval=0.5, message="all 6 brokers registered with all 3 NameServers")

    down = rmqh(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert LocalCluster(home / "cluster").live_pids() == []
    assert rmqh(home, "status").returncode == 1  # no cluster: a clear error, not a traceback


def test_bad_input_names_the_field_and_exits_2(home: Path) -> None:
    result = rmqh(home, "up", "--replicas", "9", "--topic", "bad topic")
    assert result.returncode == 2
    assert "replicas" in result.stderr and "topic" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "cluster" / "state.json").exists()
    bad_demo = rmqh(home, "demo", "--duration", "0", "--window", "0")
    assert bad_demo.returncode == 2 and "--duration" in bad_demo.stderr and "--window" in bad_demo.stderr


def test_demo_writes_a_report_and_leaves_nothing_behind(home: Path) -> None:
    result = rmqh(home, "demo", "--duration", "6", "--producers", "2", "--consumers", "1",
                  "--runs", str(home / "runs"), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = (home / "runs" / "latest").resolve()
    assert (run / "report.html").stat().st_size > 10_000
    stats = {e["method"]: e for e in json.loads((run / "locust" / "stats.json").read_text())}
    assert stats["SEND"]["num_requests"] > 0 and stats["CONSUME"]["num_requests"] > 0
    with open(run / "metrics" / "process.csv") as fh:
        nodes = {row["node"] for row in csv.DictReader(fh)}
    assert {"ns-0", "ns-1", "ns-2", *BROKERS} <= nodes
    events = [json.loads(line)["event"] for line in (run / "history.jsonl").read_text().splitlines()]
    for event in ("run-started", "cluster-ready", "load-started", "load-stopped", "cluster-down", "run-finished"):
        assert event in events
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"
    assert LocalCluster(home / "cluster").live_pids() == []


def test_nodes_exit_when_the_demo_harness_is_killed(home: Path) -> None:
    env = {**os.environ, "RMQH_HOME": str(home)}
    proc = subprocess.Popen([*RMQH, "demo", "--duration", "60", "--runs", str(home / "runs")], env=env, cwd=home,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster = LocalCluster(home / "cluster")
    try:
        wait_until(lambda: len(cluster.live_pids()) == 9, timeout=60, message="9 node processes")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_until(lambda: cluster.live_pids() == [], timeout=20, message="orphaned nodes to exit on their own")
    wait_until(lambda: _processes_mentioning(str(home / "cluster")) == [], timeout=20,
               message="the orphaned Locust process to quit on its own")
    assert rmqh(home, "down").returncode == 0


def _processes_mentioning(marker: str) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"]) if any(marker in a for a in (p.info["cmdline"] or []))]
