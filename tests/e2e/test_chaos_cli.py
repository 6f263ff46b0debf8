"""`rmqh chaos ...` end to end: separate commands sharing only RMQH_HOME, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.local.cluster import LocalCluster
from harness.history import read_history

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]
RMQH = [sys.executable, "-m", "harness.cli"]


def rmqh(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RMQH_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([*RMQH, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fault_events(home: Path) -> list[dict]:
    path = home / "cluster" / "events.jsonl"
    return [e for e in read_history(path) if e["event"].startswith("fault-")] if path.exists() else []


@pytest.fixture
def home(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield tmp_path
    LocalCluster(tmp_path / "cluster").down(timeout=3)


@pytest.fixture
def cluster_home(home: Path) -> Path:
    ok(rmqh(home, "up", "--replicas", "1", "--namesrv", "2", "--groups", "2", "--profile", "fast"))
    return home


def test_list_shows_every_fault_without_a_cluster(home: Path) -> None:
    out = ok(rmqh(home, "chaos", "list"))
    for name in ("kill-master", "partition-namesrv", "isolate-broker", "partition-leader", "latency", "--jitter"):
        assert name in out


def test_bad_input_exits_2_naming_the_choices_and_changes_nothing(cluster_home: Path) -> None:
    bad_fault = rmqh(cluster_home, "chaos", "kill-mastr", "broker-a")
    assert bad_fault.returncode == 2 and "kill-master" in bad_fault.stderr and "partition-namesrv" in bad_fault.stderr
    bad_group = rmqh(cluster_home, "chaos", "kill-master", "broker-q")
    assert bad_group.returncode == 2 and "broker-a, broker-b" in bad_group.stderr
    bad_param = rmqh(cluster_home, "chaos", "latency", "ns-0", "--latency", "fast", "--colour", "red")
    assert bad_param.returncode == 2 and "--latency: 'fast' is not an integer" in bad_param.stderr
    assert "--colour: unknown parameter" in bad_param.stderr and "Traceback" not in bad_param.stderr
    bad_node = rmqh(cluster_home, "chaos", "kill", "ns-7")
    assert bad_node.returncode == 2 and "ns-0, ns-1, broker-a-0, broker-b-0, all" in bad_node.stderr
    assert fault_events(cluster_home) == [] and "no active faults" in ok(rmqh(cluster_home, "chaos", "status"))


def test_inject_status_and_heal_in_separate_commands(cluster_home: Path) -> None:
    out = ok(rmqh(cluster_home, "chaos", "partition-namesrv", "ns-1", "--side", "clients"))
    fault_id = out.split("injected ")[1].split(":")[0]
    assert fault_id.startswith("partition-namesrv-")
    status = ok(rmqh(cluster_home, "chaos", "status"))
    assert fault_id in status and "ns-1" in status and "--side clients" in status
    assert "timeout/upstream" in ok(rmqh(cluster_home, "chaos", "links"))
    ok(rmqh(cluster_home, "chaos", "heal", fault_id))
    assert "no active faults" in ok(rmqh(cluster_home, "chaos", "status"))
    assert "timeout/" not in ok(rmqh(cluster_home, "chaos", "links"))
    inject, heal = fault_events(cluster_home)
    assert (inject["event"], heal["event"]) == ("fault-inject", "fault-heal")
    assert inject["fault"] == heal["fault"] == "partition-namesrv" and inject["targets"][0] == "ns-1"
    assert "verified" in ok(rmqh(cluster_home, "chaos", "verify"))


def test_for_heals_on_its_own(cluster_home: Path) -> None:
    ok(rmqh(cluster_home, "chaos", "latency", "broker-a-0", "--latency", "50", "--for", "1.5"))
    assert "no active faults" in ok(rmqh(cluster_home, "chaos", "status"))
    events = fault_events(cluster_home)
    assert [e["event"] for e in events] == ["fault-inject", "fault-heal"]
    assert events[1]["mono"] - events[0]["mono"] >= 1.5
    assert rmqh(cluster_home, "chaos", "restart", "ns-0", "--for", "3").returncode == 2  # instant: --for is wrong


def test_down_heals_active_faults_before_stopping(cluster_home: Path) -> None:
    kill = ok(rmqh(cluster_home, "chaos", "kill-master", "broker-b"))
    assert "broker-b-0" in kill
    ok(rmqh(cluster_home, "chaos", "pause", "ns-0"))
    assert len(json.loads((cluster_home / "cluster" / "chaos" / "active.json").read_text())["active"]) == 2
    ok(rmqh(cluster_home, "down"))
    heals = [e for e in fault_events(cluster_home) if e["event"] == "fault-heal"]
    assert sorted(e["fault"] for e in heals) == ["kill-master", "pause"] and all(e["teardown"] for e in heals)
    assert LocalCluster(cluster_home / "cluster").live_pids() == []
