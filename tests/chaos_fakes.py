"""A FakeContext for chaos unit tests: the cluster as plain sets and dicts, every call logged."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.links import plan_links
from cluster.topology import NodePlan, Topology, TopologySpec
from harness.errors import HarnessError
from harness.state import LinkState, NodeState


def fake_topology(namesrvs: int = 3, groups: int = 2, replicas: int = 1) -> Topology:
    """A plan with made-up ports (nothing is bound)."""
    spec = TopologySpec(namesrv_count=namesrvs, group_count=groups, replicas=replicas)
    ns = tuple(NodePlan(f"ns-{i}", "namesrv", 9000 + i) for i in range(namesrvs))
    groups_ = tuple(f"broker-{chr(97 + g)}" for g in range(groups))
    brokers = tuple(NodePlan(f"{g}-{r}", "broker", 10000 + 10 * gi + r, g, r, 20000 + 10 * gi + r if replicas > 1 else 0)
                    for gi, g in enumerate(groups_) for r in range(replicas))
    return Topology(spec, ns, brokers, groups_)


@dataclass
class FakeContext:
    nodes_: list[NodeState]
    links_: list[LinkState]
    abilities: frozenset[str] = frozenset({"process", "pause", "proxy", "routes"})
    alive: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    toxics: dict[tuple[str, str], dict] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    masters: dict[str, str | None] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    #: Raise on the n-th call of this operation (1 = first).
    fail: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    closed: int = 0

    @classmethod
    def of(cls, namesrvs: int = 3, groups: int = 2, replicas: int = 1) -> FakeContext:
        topology = fake_topology(namesrvs, groups, replicas)
        nodes = [NodeState(p.node_id, p.role, "127.0.0.1", p.port, f"127.0.0.1:{p.port + 1000}", pid=1,
                           group=p.group, replica_index=p.replica_index, raft_port=p.raft_port)
                 for p in topology.nodes]
        links = [LinkState(p.name, p.kind, p.from_node, p.to_node, f"127.0.0.1:{30000 + i}", p.upstream)
                 for i, p in enumerate(plan_links(topology))]
        ctx = cls(nodes, links, alive={n.node_id for n in nodes})
        ctx.masters = {g: f"{g}-0" for g in topology.groups}
        return ctx

    def _call(self, op: str, *args: object) -> None:
        self.calls.append((op, *args))
        count = sum(1 for c in self.calls if c[0] == op)
        if self.fail.get(op) == count:
            raise HarnessError(f"injected failure of {op}")

    def nodes(self) -> list[NodeState]:
        return list(self.nodes_)

    def links(self) -> list[LinkState]:
        return list(self.links_)

    def node_alive(self, node_id: str) -> bool:
        return node_id in self.alive

    def master_of(self, group: str) -> str | None:
        return self.masters.get(group)

    def kill_node(self, node_id: str) -> None:
        self._call("kill", node_id)
        self.alive.discard(node_id)

    def stop_node(self, node_id: str) -> None:
        self._call("stop", node_id)
        self.alive.discard(node_id)

    def start_node(self, node_id: str) -> None:
        if node_id in self.alive:
            return  # idempotent, like the real one
        self._call("start", node_id)
        self.alive.add(node_id)

    def pause_node(self, node_id: str) -> None:
        self._call("pause", node_id)
        self.paused.add(node_id)

    def resume_node(self, node_id: str) -> None:
        self._call("resume", node_id)
        self.paused.discard(node_id)

    def add_toxic(self, link: str, name: str, type: str, stream: str, attributes: Mapping[str, int]) -> None:
        self._call("add_toxic", link, name)
        assert (link, name) not in self.toxics, f"toxic {name} added twice on {link}"
        self.toxics[(link, name)] = {"type": type, "stream": stream, "attributes": dict(attributes)}

    def remove_toxic(self, link: str, name: str) -> None:
        self._call("remove_toxic", link, name)
        self.toxics.pop((link, name), None)

    def disable_link(self, link: str) -> None:
        self._call("disable", link)
        self.disabled.add(link)

    def enable_link(self, link: str) -> None:
        self._call("enable", link)
        self.disabled.discard(link)

    def reset_links(self) -> None:
        self.resets += 1
        self.toxics.clear()
        self.disabled.clear()

    def resume_all(self) -> list[str]:
        resumed, self.paused = sorted(self.paused), set()
        return resumed

    def close(self) -> None:
        self.closed += 1
