"""The demo's process sampler follows a node restarted under a new pid, through the state file."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.metrics.follow import StateFollower
from harness.metrics.process import ProcessSampler
from harness.state import ClusterState, NodeState, save_state
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _pids_sampled(path: Path, node: str) -> set[int]:
    if not path.exists():
        return set()
    with open(path, newline="") as fh:
        return {int(r["pid"]) for r in csv.DictReader(fh) if r["node"] == node}


def test_restarted_node_is_sampled_under_its_new_pid(tmp_path: Path) -> None:
    first, second, locust = _sleeper(), _sleeper(), _sleeper()
    state = ClusterState(state_dir=str(tmp_path), nodes=[NodeState("ns-0", "namesrv", "127.0.0.1", 1, "x", first.pid,
                                                                   psutil.Process(first.pid).create_time())])
    save_state(state)
    sampler = ProcessSampler(tmp_path / "process.csv", interval=0.1)
    follower = StateFollower(sampler, tmp_path, interval=0.1)
    try:
        sampler.start()
        follower.start()
        follower.set_extra({"locust": ("loadgen", locust.pid)})
        wait_until(lambda: first.pid in _pids_sampled(tmp_path / "process.csv", "ns-0"), timeout=10)
        state.nodes[0].pid = second.pid  # what a heal that restarts the node writes
        save_state(state)
        wait_until(lambda: second.pid in _pids_sampled(tmp_path / "process.csv", "ns-0"), timeout=10,
                   message="rows for the restarted node's new pid")
        assert locust.pid in _pids_sampled(tmp_path / "process.csv", "locust")
    finally:
        follower.stop()
        sampler.stop()
        for proc in (first, second, locust):
            proc.kill()
            proc.wait()
