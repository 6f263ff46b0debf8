"""The link plan: which Toxiproxy proxy fronts which connection of the cluster, and the addresses that follow.

Terms:

- **link**: one directed kind of connection, fronted by one proxy of its own, named ``FROM->TO``:
  - ``client``: anything outside the cluster (producers, consumers, the harness) -> a node. ``FROM`` is the
    pseudo node ``clients``. Brokers advertise this proxy's address, so NameServer routes point at it.
  - ``ns-link``: one broker -> one NameServer (its registrations and heartbeats).
  - ``peer-link``: one replica -> another replica of its group (Raft traffic), one per direction.
- **upstream**: the node's own listen address (its client port, or its Raft port for a peer link).
- **listen**: where the proxy accepts; known only once the Toxiproxy server has bound it (port 0 asked).

Per-link proxies are what make RocketMQ-shaped faults possible: a NameServer cut off from brokers but not
from clients, a broker pair cut in one direction only, a leader cut from its followers but not from clients.
This module is pure: planning needs a Topology, addressing needs the proxies' resolved listen addresses.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from cluster.topology import NodePlan, Topology
from harness.errors import ConfigError

LinkKind = Literal["client", "ns-link", "peer-link"]
LINK_KINDS: tuple[LinkKind, ...] = ("client", "ns-link", "peer-link")
#: The pseudo node at the far end of every client link.
CLIENTS = "clients"


@dataclass(frozen=True)
class LinkPlan:
    name: str
    kind: LinkKind
    from_node: str
    to_node: str
    #: ``host:port`` the proxy forwards to: the target node's own listen (or Raft) address.
    upstream: str


def link_name(from_node: str, to_node: str) -> str:
    return f"{from_node}->{to_node}"


def plan_links(topology: Topology) -> tuple[LinkPlan, ...]:
    """Client links first (every node), then every broker's NameServer links, then every peer direction."""
    host = topology.spec.host
    links = [LinkPlan(link_name(CLIENTS, n.node_id), "client", CLIENTS, n.node_id, f"{host}:{n.port}")
             for n in topology.nodes]
    for broker in topology.brokers:
        links += [LinkPlan(link_name(broker.node_id, ns.node_id), "ns-link", broker.node_id, ns.node_id,
                           f"{host}:{ns.port}") for ns in topology.namesrvs]
    for broker in topology.brokers:
        links += [LinkPlan(link_name(broker.node_id, peer.node_id), "peer-link", broker.node_id, peer.node_id,
                           f"{host}:{peer.raft_port}") for peer in group_peers(topology, broker)]
    return tuple(links)


def group_peers(topology: Topology, broker: NodePlan) -> list[NodePlan]:
    """The other replicas of ``broker``'s group: only groups with Raft ports have peers."""
    if not broker.raft_port:
        return []
    return [p for p in topology.brokers if p.group == broker.group and p.node_id != broker.node_id]


def raft_id(plan: NodePlan) -> str:
    return f"n{plan.replica_index}"


class AddressBook(Protocol):
    """Where each party dials: the proxy of the link when proxied, the node itself otherwise."""

    def client_addr(self, node_id: str) -> str: ...

    def dial(self, from_node: str, to_node: str) -> str: ...


@dataclass(frozen=True)
class DirectAddresses:
    """No proxies: everybody dials the node's own address (``--no-proxy``)."""

    topology: Topology

    def client_addr(self, node_id: str) -> str:
        return f"{self.topology.spec.host}:{self.topology.node(node_id).port}"

    def dial(self, from_node: str, to_node: str) -> str:
        plan = self.topology.node(to_node)
        port = plan.raft_port if self.topology.node(from_node).role == "broker" and plan.role == "broker" \
            else plan.port
        return f"{self.topology.spec.host}:{port}"


@dataclass(frozen=True)
class ProxiedAddresses:
    """Everybody dials the proxy of the link: ``listens`` maps each link name to its proxy's listen address."""

    listens: Mapping[str, str]

    def client_addr(self, node_id: str) -> str:
        return self._listen(link_name(CLIENTS, node_id))

    def dial(self, from_node: str, to_node: str) -> str:
        return self._listen(link_name(from_node, to_node))

    def _listen(self, name: str) -> str:
        try:
            return self.listens[name]
        except KeyError:
            raise ConfigError(f"no proxy for link {name!r}; planned links are {', '.join(self.listens)}") from None


def broker_namesrv_addrs(book: AddressBook, topology: Topology, broker_id: str) -> tuple[str, ...]:
    return tuple(book.dial(broker_id, ns.node_id) for ns in topology.namesrvs)


def broker_raft_peers(book: AddressBook, topology: Topology, broker: NodePlan) -> dict[str, str]:
    """Raft peers as THIS replica reaches them; its own entry is its own Raft address (nobody dials it)."""
    peers = group_peers(topology, broker)
    if not peers:
        return {}
    own = {raft_id(broker): f"{topology.spec.host}:{broker.raft_port}"}
    return own | {raft_id(p): book.dial(broker.node_id, p.node_id) for p in peers}


def check_resolved(links: Iterable[LinkPlan], listens: Mapping[str, str]) -> None:
    """Every planned link must have a proxy listening on a concrete port (not 0) before nodes start."""
    missing = [link.name for link in links if _port(listens.get(link.name, "")) <= 0]
    if missing:
        raise ConfigError(f"proxies without a resolved listen address: {', '.join(missing)}")


def _port(addr: str) -> int:
    try:
        return int(addr.rpartition(":")[2])
    except ValueError:
        return 0
