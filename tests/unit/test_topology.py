from __future__ import annotations

import pytest

from cluster.local.config import TIMING_PROFILES, Timing, timing_profile
from cluster.topology import PortSource, TopologySpec, plan_topology
from harness.errors import ConfigError


def test_default_plan_is_the_seed_architecture_of_three_replica_groups() -> None:
    topo = plan_topology(TopologySpec(), PortSource())
    assert [n.node_id for n in topo.namesrvs] == ["ns-0", "ns-1", "ns-2"]
    assert [(b.node_id, b.group) for b in topo.brokers] == [
        (f"broker-{g}-{r}", f"broker-{g}") for g in "ab" for r in range(3)]
    ports = [n.port for n in topo.nodes] + [b.raft_port for b in topo.brokers]
    assert len(set(ports)) == len(ports)


def test_single_replica_groups_have_no_raft_port() -> None:
    topo = plan_topology(TopologySpec(replicas=1), PortSource())
    assert [(b.node_id, b.raft_port) for b in topo.brokers] == [("broker-a-0", 0), ("broker-b-0", 0)]


def test_replicated_groups_get_raft_ports() -> None:
    topo = plan_topology(TopologySpec(replicas=3, group_count=1), PortSource())
    assert [b.replica_index for b in topo.brokers] == [0, 1, 2]
    assert all(b.raft_port for b in topo.brokers)
    assert len({b.raft_port for b in topo.brokers} | {b.port for b in topo.brokers}) == 6


def test_every_error_is_named_with_its_field() -> None:
    with pytest.raises(ConfigError) as info:
        TopologySpec(namesrv_count=0, replicas=6, topic="a b", host="0.0.0.0").validate()
    text = str(info.value)
    for field in ("namesrv_count", "replicas", "topic", "host"):
        assert field in text


def test_unknown_node_names_the_valid_ones() -> None:
    topo = plan_topology(TopologySpec(namesrv_count=1, group_count=1, replicas=1), PortSource())
    with pytest.raises(ConfigError, match="ns-0, broker-a-0"):
        topo.node("nope")


def test_fast_profile_keeps_ratios_and_request_timeouts() -> None:
    slow, fast = Timing(), TIMING_PROFILES["fast"]
    assert fast.broker_expiry / fast.namesrv_scan_interval == slow.broker_expiry / slow.namesrv_scan_interval
    assert fast.raft_heartbeat_interval == pytest.approx(slow.raft_heartbeat_interval / 10)
    assert fast.raft_max_heartbeat_leak == slow.raft_max_heartbeat_leak
    assert fast.rpc_timeout == slow.rpc_timeout
    with pytest.raises(ConfigError, match="default"):
        timing_profile("turbo")
