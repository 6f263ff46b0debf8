"""What each fault plans to do on a fake cluster (pure: nothing runs), and what it refuses."""
from __future__ import annotations

import pytest

from chaos.base import Plan, build_fault
from harness.errors import ConfigError, HarnessError
from tests.chaos_fakes import FakeContext


def plan(ctx: FakeContext, name: str, *args: str, **params: object) -> Plan:
    fault = build_fault(name, list(args), params)
    fault.check_abilities(ctx)
    return fault.plan(ctx)


def toxic_links(p: Plan) -> set[tuple[str, str, str]]:
    return {(s.link, s.toxic, s.stream) for s in p.steps if s.op == "toxic"}


def test_kill_master_kills_whoever_the_namesrvs_list_as_master() -> None:
    ctx = FakeContext.of(replicas=3)
    ctx.masters["broker-a"] = "broker-a-2"
    p = plan(ctx, "kill-master", "broker-a")
    assert p.targets == ("broker-a-2",) and [(s.op, s.node) for s in p.steps] == [("kill", "broker-a-2")]
    ctx.masters["broker-b"] = None
    with pytest.raises(HarnessError, match="no NameServer lists a master"):
        plan(ctx, "kill-master", "broker-b")
    with pytest.raises(ConfigError, match="unknown group 'broker-z'; choose from broker-a, broker-b"):
        plan(ctx, "kill-master", "broker-z")


def test_kill_namesrv_all_takes_the_running_ones() -> None:
    ctx = FakeContext.of()
    ctx.alive.discard("ns-1")
    assert plan(ctx, "kill-namesrv", "all").targets == ("ns-0", "ns-2")
    with pytest.raises(HarnessError, match="ns-1 not running"):
        plan(ctx, "kill-namesrv", "ns-1")
    with pytest.raises(ConfigError, match="unknown namesrv 'broker-a-0'; choose from ns-0, ns-1, ns-2, all"):
        plan(ctx, "kill-namesrv", "broker-a-0")


def test_partition_namesrv_black_holes_the_chosen_side() -> None:
    ctx = FakeContext.of()
    brokers = plan(ctx, "partition-namesrv", "ns-1")
    assert toxic_links(brokers) == {(f"broker-{g}-0->ns-1", "timeout", s)
                                    for g in "ab" for s in ("upstream", "downstream")}
    assert all(s.attributes == {"timeout": 0} for s in brokers.steps)
    clients = plan(ctx, "partition-namesrv", "ns-1", side="clients")
    assert {s.link for s in clients.steps} == {"clients->ns-1"}
    both = plan(ctx, "partition-namesrv", "all", side="both")
    assert len({s.link for s in both.steps}) == 3 + 6
    assert both.targets[:3] == ("ns-0", "ns-1", "ns-2")


def test_isolate_broker_cuts_every_link_of_it_in_both_directions() -> None:
    ctx = FakeContext.of(replicas=3)
    p = plan(ctx, "isolate-broker", "broker-a-1")
    links = {s.link for s in p.steps}
    assert links == {"clients->broker-a-1", "broker-a-1->ns-0", "broker-a-1->ns-1", "broker-a-1->ns-2",
                     "broker-a-1->broker-a-0", "broker-a-1->broker-a-2", "broker-a-0->broker-a-1",
                     "broker-a-2->broker-a-1"}
    assert len(p.steps) == 2 * len(links)
    with pytest.raises(ConfigError, match="unknown broker 'ns-0'"):
        plan(ctx, "isolate-broker", "ns-0")


def test_partition_leader_cuts_only_the_masters_peer_links() -> None:
    ctx = FakeContext.of(replicas=3)
    ctx.masters["broker-b"] = "broker-b-1"
    p = plan(ctx, "partition-leader", "broker-b")
    assert {s.link for s in p.steps} == {"broker-b-1->broker-b-0", "broker-b-1->broker-b-2",
                                         "broker-b-0->broker-b-1", "broker-b-2->broker-b-1"}
    assert p.targets == ("broker-b-1", "broker-b-0", "broker-b-2")
    with pytest.raises(ConfigError, match="single replica"):
        plan(FakeContext.of(replicas=1), "partition-leader", "broker-a")


def test_link_faults_select_by_node_kind_and_ends() -> None:
    ctx = FakeContext.of(replicas=3)
    p = plan(ctx, "latency", "broker-a-0", latency=100, jitter=10, kind="client")
    assert toxic_links(p) == {("clients->broker-a-0", "latency", "downstream")}
    assert p.steps[0].attributes == {"latency": 100, "jitter": 10}
    one_way = plan(ctx, "bandwidth", rate=50, **{"from": "broker-a-0", "to": "broker-a-1"}, stream="both")
    assert toxic_links(one_way) == {("broker-a-0->broker-a-1", "bandwidth", s) for s in ("upstream", "downstream")}
    assert len(plan(ctx, "reset-peer", "all").steps) == len(ctx.links_)
    assert plan(ctx, "reset-peer", "all").steps[0].stream == "upstream"


def test_link_faults_refuse_vague_or_unknown_selections() -> None:
    ctx = FakeContext.of()
    with pytest.raises(ConfigError, match="name nodes, 'all', or select links"):
        plan(ctx, "latency", latency=5)
    with pytest.raises(ConfigError, match="--from: unknown node 'ns-7'"):
        plan(ctx, "latency", latency=5, **{"from": "ns-7"})
    with pytest.raises(ConfigError, match="no link matches"):
        plan(ctx, "latency", "ns-0", latency=5, kind="peer-link")
    with pytest.raises(ConfigError, match="--size-variation: 64 must be below --average-size 64"):
        plan(ctx, "slicer", "ns-0", average_size=64, size_variation=64)


def test_faults_needing_proxies_are_refused_without_them() -> None:
    ctx = FakeContext.of()
    ctx.abilities = frozenset({"process", "pause", "routes"})
    with pytest.raises(ConfigError, match="latency needs proxy.*RMQH_PROXY=0"):
        plan(ctx, "latency", "ns-0", latency=5)
    assert plan(ctx, "kill", "ns-0").targets == ("ns-0",)


def test_process_faults_plan_their_signals() -> None:
    ctx = FakeContext.of()
    assert [(s.op, s.node) for s in plan(ctx, "restart", "ns-0", "ns-1").steps] == \
        [("stop", "ns-0"), ("start", "ns-0"), ("stop", "ns-1"), ("start", "ns-1")]
    ctx.alive.discard("ns-2")
    assert plan(ctx, "start", "ns-2").steps[0].op == "start"  # start needs no running node
    with pytest.raises(HarnessError, match="ns-2 not running"):
        plan(ctx, "pause", "ns-2")
