"""`rmqh locust`: Locust's web UI on 127.0.0.1 drives the running cluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from cluster.local.cluster import LocalCluster
from cluster.local.process import free_port
from cluster.topology import TopologySpec
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _listen_addresses(pid: int, port: int) -> set[str]:
    conns = psutil.Process(pid).net_connections(kind="inet")
    return {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_web_ui_on_loopback_drives_producers_and_consumers(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster")
    cluster.up(TopologySpec(namesrv_count=1, group_count=1, replicas=1), "fast", parent_pid=os.getpid())
    port = free_port()
    env = {**os.environ, "RMQH_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "locust", "--port", str(port), "--window", "4"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(base, timeout=2).status_code == 200, timeout=60, message="the web UI")
        # rmqh runs locust as a child process: the listener belongs to that child.
        pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert set().union(*(_listen_addresses(pid, port) for pid in pids)) == {"127.0.0.1"}
        swarm = requests.post(f"{base}/swarm", data={"user_count": 3, "spawn_rate": 3}, timeout=10)
        assert swarm.status_code == 200, swarm.text

        def counts() -> dict[str, int]:
            stats = requests.get(f"{base}/stats/requests", timeout=5).json()["stats"]
            return {s["method"]: s["num_requests"] for s in stats if s["name"] != "Aggregated"}
        wait_until(lambda: counts().get("SEND", 0) > 50 and counts().get("CONSUME", 0) > 50, timeout=60,
                   interval=0.5, message="SEND and CONSUME requests in the UI's stats")
        assert requests.post(f"{base}/stop", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        cluster.down(timeout=5)
    assert cluster.live_pids() == []
