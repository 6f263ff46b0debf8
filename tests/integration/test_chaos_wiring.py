"""Every link of the cluster runs through its own proxy: routes, configs, verify, and clean teardown."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.toxiproxy import ToxiproxyClient
from chaos.verify import verify
from cluster.local.cluster import LocalCluster
from cluster.local.proxyproc import find_proxy_pids
from harness.remoting.mq import Message
from tests.helpers import wait_until
from tests.integration.chaos_cluster import TOPIC, client, route_master, running_cluster, state_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_clients_brokers_and_peers_all_dial_proxies_and_verify_sees_no_bypass(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=2, groups=1, replicas=3) as chaos:
        state = state_of(chaos)
        listens = {link.name: link.listen for link in state.links}
        assert {link.kind for link in state.links} == {"client", "ns-link", "peer-link"}
        assert len(state.links) == 5 + 3 * 2 + 3 * 2
        wait_until(lambda: route_master(state, "broker-a"), timeout=20, message="a master in the route")
        assert route_master(state, "broker-a") in {listens[f"clients->broker-a-{i}"] for i in range(3)}
        config = json.loads(Path(state.node("broker-a-1").config_path).read_text())
        assert config["namesrv_addrs"] == [listens["broker-a-1->ns-0"], listens["broker-a-1->ns-1"]]
        assert config["raft_peers"]["n2"] == listens["broker-a-1->broker-a-2"]
        with client(state) as mq, ToxiproxyClient(state.proxy.host, state.proxy.port) as api:  # type: ignore[union-attr]
            wait_until(lambda: mq.send(Message(TOPIC, b"hello")), timeout=15, message="a send")
            # Every node holds connections that came through a proxy (NameServers: brokers; brokers: peers
            # and this client) once the Raft links are up ...
            wait_until(lambda: all(verify(state, api).proxied.get(n.node_id) for n in state.nodes), timeout=10,
                       message="proxied connections at every node")
            report = verify(state, api)
        # ... and none came any other way.
        assert report.ok, (report.bypasses, report.misrouted)
        assert set(report.nodes_checked) == {n.node_id for n in state.nodes}

def test_verify_reports_a_connection_made_straight_to_a_node_port(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        state = state_of(chaos)
        node = state.node("broker-a-0")
        with socket.create_connection((node.host, node.port)) as sneaky, \
                ToxiproxyClient(state.proxy.host, state.proxy.port) as api:  # type: ignore[union-attr]
            ip, port = sneaky.getsockname()[:2]
            report = wait_until(lambda: (r := verify(state, api)).bypasses and r, timeout=5, message="a bypass")
        assert [(b.node_id, b.remote) for b in report.bypasses] == [("broker-a-0", f"{ip}:{port}")]


def test_down_stops_a_proxy_server_the_state_file_forgot(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        state = state_of(chaos)
        assert state.proxy is not None and find_proxy_pids(chaos.state_dir) == [state.proxy.pid]
        (chaos.state_dir / "state.json").unlink()  # as if the harness died before writing it
        cluster = LocalCluster(chaos.state_dir)
        assert state.proxy.pid in cluster.live_pids()
        cluster.down(timeout=5)
        assert cluster.live_pids() == [] and find_proxy_pids(chaos.state_dir) == []


def test_the_proxy_server_and_nodes_go_when_their_harness_dies(tmp_path: Path) -> None:
    code = ("import os, sys; from pathlib import Path; from cluster.local.cluster import LocalCluster;"
            "from cluster.topology import TopologySpec;"
            "LocalCluster(Path(sys.argv[1])).up(TopologySpec(namesrv_count=1, group_count=1, replicas=1), 'fast',"
            " parent_pid=os.getpid()); print('up', flush=True); os._exit(0)")
    state_dir = tmp_path / "cluster"
    done = subprocess.run([sys.executable, "-c", code, str(state_dir)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert "up" in done.stdout, done.stderr
    cluster = LocalCluster(state_dir)
    try:
        wait_until(lambda: cluster.live_pids() == [], timeout=15, message="orphans exiting on their own")
    finally:
        cluster.down(timeout=3)


def test_no_proxy_leaves_nodes_on_their_own_addresses(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster")
    try:
        from cluster.topology import TopologySpec

        state = cluster.up(TopologySpec(namesrv_count=1, group_count=1, replicas=1), "fast", parent_pid=os.getpid(),
                           proxy=False)
        assert state.proxy is None and state.links == []
        assert [n.addr for n in state.nodes] == [f"{n.host}:{n.port}" for n in state.nodes]
    finally:
        cluster.down(timeout=5)
    assert cluster.live_pids() == []
