"""A whole embedded cluster behind its proxies for chaos tests (fast timing), and ways to look at it."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from chaos.engine import Chaos
from cluster.local.cluster import LocalCluster
from cluster.topology import TopologySpec
from harness.remoting.mq import Message, MQClient
from harness.state import ClusterState, load_state
from harness.status import cluster_info, registrations
from tests.helpers import wait_until

TOPIC = "RMQH_CHAOS"


@contextlib.contextmanager
def running_cluster(tmp: Path, namesrvs: int = 3, groups: int = 2, replicas: int = 1) -> Iterator[Chaos]:
    """Up, every broker registered everywhere, then the test; down (with the heal backstop) whatever happens."""
    cluster = LocalCluster(tmp / "cluster")
    spec = TopologySpec(namesrv_count=namesrvs, group_count=groups, replicas=replicas, topic=TOPIC,
                        queues_per_group=2)
    try:
        state = cluster.up(spec, "fast", parent_pid=os.getpid())
        wait_until(lambda: all_registered(state), timeout=30, interval=0.1, message="every broker registered")
        yield Chaos(cluster.state_dir)
    finally:
        cluster.down(timeout=5)
    assert cluster.live_pids() == []


def state_of(chaos: Chaos) -> ClusterState:
    return load_state(chaos.state_dir)


def direct(state: ClusterState, node_id: str) -> str:
    node = state.node(node_id)
    return f"{node.host}:{node.port}"


def registered_at(state: ClusterState, namesrv: str) -> dict[str, int]:
    """broker address -> brokerId as one NameServer lists them (asked on its own port)."""
    return registrations(cluster_info(direct(state, namesrv)))


def all_registered(state: ClusterState) -> bool:
    brokers = {b.addr for b in state.brokers}
    return all(brokers <= set(registered_at(state, ns.node_id)) for ns in state.nodes if ns.role == "namesrv")


def route_master(state: ClusterState, group: str) -> str | None:
    """brokerId 0 of ``group`` in a fresh route, as a client gets it (through the proxies)."""
    with MQClient(state.namesrv_addrs, rpc_timeout=2.0) as client:
        route = client.topic_route(TOPIC, refresh=True)
    return route.brokers[group].broker_addrs.get(0) if group in route.brokers else None


def client(state: ClusterState, rpc_timeout: float = 3.0, namesrvs: list[str] | None = None) -> MQClient:
    return MQClient(namesrvs or state.namesrv_addrs, rpc_timeout=rpc_timeout, route_poll_interval=0.5)


def timed_send(mq: MQClient, group: str) -> float:
    """Seconds one synchronous send to a queue of ``group`` took."""
    queue = next(q for q in mq.topic_route(TOPIC).publish_queues() if q.broker_name == group)
    started = time.monotonic()
    mq.send(Message(TOPIC, b"x" * 64), queue=queue)
    return time.monotonic() - started
