"""The link plan (cluster/links.py): one proxy per directed link, and the addresses each party dials."""
from __future__ import annotations

import pytest

from cluster.links import (CLIENTS, DirectAddresses, ProxiedAddresses, broker_namesrv_addrs, broker_raft_peers,
                           check_resolved, plan_links)
from harness.errors import ConfigError
from tests.chaos_fakes import fake_topology


def test_single_replica_plan_has_client_and_ns_links_only() -> None:
    links = plan_links(fake_topology(namesrvs=3, groups=2, replicas=1))
    kinds = [link.kind for link in links]
    assert kinds.count("client") == 5 and kinds.count("ns-link") == 6 and "peer-link" not in kinds
    assert links[0].name == "clients->ns-0" and links[0].from_node == CLIENTS
    assert "broker-b-0->ns-2" in {link.name for link in links}
    assert len({link.name for link in links}) == len(links)


def test_every_directed_peer_pair_has_its_own_proxy_to_the_raft_port() -> None:
    topology = fake_topology(namesrvs=3, groups=2, replicas=3)
    peers = [link for link in plan_links(topology) if link.kind == "peer-link"]
    assert len(peers) == 2 * 3 * 2  # groups x replicas x the other two
    to_a1 = next(link for link in peers if link.name == "broker-a-0->broker-a-1")
    assert to_a1.upstream == f"127.0.0.1:{topology.node('broker-a-1').raft_port}"
    assert not any(link.from_node.startswith("broker-a") and link.to_node.startswith("broker-b") for link in peers)


def test_upstreams_are_the_nodes_own_ports() -> None:
    topology = fake_topology()
    by_name = {link.name: link for link in plan_links(topology)}
    assert by_name["clients->broker-a-0"].upstream == f"127.0.0.1:{topology.node('broker-a-0').port}"
    assert by_name["broker-a-0->ns-1"].upstream == by_name["clients->ns-1"].upstream


def test_brokers_dial_their_own_ns_links_and_peer_links() -> None:
    topology = fake_topology(replicas=3)
    listens = {link.name: f"127.0.0.1:{40000 + i}" for i, link in enumerate(plan_links(topology))}
    book = ProxiedAddresses(listens)
    assert broker_namesrv_addrs(book, topology, "broker-a-1") == tuple(
        listens[f"broker-a-1->ns-{i}"] for i in range(3))
    peers = broker_raft_peers(book, topology, topology.node("broker-a-1"))
    assert peers == {"n1": f"127.0.0.1:{topology.node('broker-a-1').raft_port}",
                     "n0": listens["broker-a-1->broker-a-0"], "n2": listens["broker-a-1->broker-a-2"]}
    assert book.client_addr("broker-a-1") == listens["clients->broker-a-1"]


def test_without_proxies_everybody_dials_the_node() -> None:
    topology = fake_topology(replicas=3)
    book = DirectAddresses(topology)
    assert book.client_addr("ns-0") == "127.0.0.1:9000"
    assert broker_raft_peers(book, topology, topology.node("broker-a-0"))["n1"] == \
        f"127.0.0.1:{topology.node('broker-a-1').raft_port}"
    assert broker_raft_peers(book, fake_topology(replicas=1), fake_topology(replicas=1).node("broker-a-0")) == {}


def test_unresolved_or_missing_proxies_are_refused() -> None:
    links = plan_links(fake_topology(namesrvs=1, groups=1))
    good = {link.name: "127.0.0.1:4000" for link in links}
    check_resolved(links, good)
    with pytest.raises(ConfigError, match="clients->ns-0"):
        check_resolved(links, {**good, "clients->ns-0": "127.0.0.1:0"})
    with pytest.raises(ConfigError, match="no proxy for link"):
        ProxiedAddresses({}).client_addr("ns-0")
