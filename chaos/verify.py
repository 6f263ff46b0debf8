"""Proof that the proxy plane is whole: every connection a node accepted came through a proxy, and through
a proxy meant for that node.

A node's accepted connections are its ESTABLISHED sockets on its listen (or Raft) port, seen with psutil;
their remote address is the dialler's local address. A connection that came through Toxiproxy has as its
remote address the proxy's upstream-side local address, which the built-in server reports in
``GET /proxies/{p}/connections`` (``upstream_local``). With ``toxiproxy-server`` (no such endpoint) the proxy
process's own sockets stand in. A connection whose remote address is neither is a **bypass**; one that came
through another node's proxy is **misrouted**. Connections open and close while the two snapshots are
taken, so a suspect is only reported if a second look still finds it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from chaos.toxiproxy import ToxiproxyClient, ToxiproxyError
from cluster.local.process import pid_alive
from harness.state import ClusterState, LinkState, NodeState


@dataclass(frozen=True)
class Accepted:
    node_id: str
    port: int
    #: ``ip:port`` of the party that dialled.
    remote: str


@dataclass(frozen=True)
class Misrouted:
    accepted: Accepted
    link: str


@dataclass
class VerifyReport:
    nodes_checked: list[str]
    proxies_checked: int
    #: Per node: accepted connections that came through its own proxies.
    proxied: dict[str, int] = field(default_factory=dict)
    bypasses: list[Accepted] = field(default_factory=list)
    misrouted: list[Misrouted] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bypasses and not self.misrouted


def accepted_connections(nodes: Sequence[NodeState]) -> list[Accepted]:
    """Every established connection the running nodes accepted (on their listen and Raft ports)."""
    found = []
    for node in nodes:
        if not node.pid or not pid_alive(node.pid, node.create_time):
            continue
        ports = {node.port} | ({node.raft_port} if node.raft_port else set())
        try:
            conns = psutil.Process(node.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found += [Accepted(node.node_id, c.laddr.port, f"{c.raddr.ip}:{c.raddr.port}") for c in conns
                  if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.laddr.port in ports]
    return found


def proxy_sources(state: ClusterState, client: ToxiproxyClient) -> dict[str, str]:
    """upstream-side local address -> link name, for every open proxied connection."""
    sources: dict[str, str] = {}
    for link in state.links:
        try:
            conns = client.connections(link.name)
        except ToxiproxyError as exc:
            if exc.status != 404 or state.proxy is None:
                raise
            return _sources_from_process(state.proxy.pid, state.links)  # toxiproxy-server: no such endpoint
        sources.update({c.upstream_local: link.name for c in conns if c.upstream_local})
    return sources


def _sources_from_process(pid: int, links: Sequence[LinkState]) -> dict[str, str]:
    """Without /connections: the proxy process's sockets to each link's upstream. Several links share an
    upstream (a NameServer's client and ns-links); any of them names the right node, which is all we check."""
    by_upstream = {link.upstream: link.name for link in links}
    sources = {}
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.raddr and conn.status == psutil.CONN_ESTABLISHED:
            target = f"{conn.raddr.ip}:{conn.raddr.port}"
            if target in by_upstream:
                sources[f"{conn.laddr.ip}:{conn.laddr.port}"] = by_upstream[target]
    return sources


def classify(accepted: Sequence[Accepted], sources: Mapping[str, str],
             links: Mapping[str, LinkState]) -> tuple[dict[str, int], list[Accepted], list[Misrouted]]:
    """Pure: each accepted connection is proxied (by one of its node's links), misrouted, or a bypass."""
    proxied: dict[str, int] = {}
    bypasses: list[Accepted] = []
    misrouted: list[Misrouted] = []
    for conn in accepted:
        name = sources.get(conn.remote)
        if name is None:
            bypasses.append(conn)
        elif links[name].to_node != conn.node_id:
            misrouted.append(Misrouted(conn, name))
        else:
            proxied[conn.node_id] = proxied.get(conn.node_id, 0) + 1
    return proxied, bypasses, misrouted


def verify(state: ClusterState, client: ToxiproxyClient) -> VerifyReport:
    """Two looks: a suspect from the first is reported only if the second look still sees it as one."""
    links = {link.name: link for link in state.links}
    first = _look(state, client, links)
    if first.ok:
        return first
    second = _look(state, client, links)
    second.bypasses = [c for c in second.bypasses if c in set(first.bypasses)]
    second.misrouted = [m for m in second.misrouted if m in set(first.misrouted)]
    return second


def _look(state: ClusterState, client: ToxiproxyClient, links: Mapping[str, LinkState]) -> VerifyReport:
    accepted = accepted_connections(state.nodes)  # nodes first: what they hold now is already in the proxy
    sources = proxy_sources(state, client)
    proxied, bypasses, misrouted = classify(accepted, sources, links)
    checked = [n.node_id for n in state.nodes if n.pid and pid_alive(n.pid, n.create_time)]
    return VerifyReport(checked, len(links), proxied, bypasses, misrouted)
