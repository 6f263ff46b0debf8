"""The node plan of a cluster: which NameServers and broker replicas exist, where each listens, which topic
they carry. Pure data; the backends turn it into processes or containers."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import ConfigError

DEFAULT_TOPIC = "RMQH_BENCH"


@dataclass(frozen=True)
class TopologySpec:
    """What the user asks for. Defaults are the seed architecture: 3 NameServers, 2 broker groups of one
    master and two slaves each (a DLedger-style Raft group)."""

    #: Number of NameServers (peers, each with the full route table).
    namesrv_count: int = 3
    #: Number of broker groups (brokerName broker-a, broker-b, ...).
    group_count: int = 2
    #: Replicas per group (1 master + N-1 slaves, a Raft group when > 1); 1 to 5.
    replicas: int = 3
    #: The topic created on every group at start; its queues are spread over all groups.
    topic: str = DEFAULT_TOPIC
    #: Queues of the topic on each group (read = write).
    queues_per_group: int = 4
    cluster_name: str = "DefaultCluster"
    host: str = "127.0.0.1"

    def validate(self) -> None:
        errors = []
        if not 1 <= self.namesrv_count <= 9:
            errors.append(f"namesrv_count: {self.namesrv_count} is outside 1..9")
        if not 1 <= self.group_count <= 26:
            errors.append(f"group_count: {self.group_count} is outside 1..26")
        if not 1 <= self.replicas <= 5:
            errors.append(f"replicas: {self.replicas} is outside 1..5")
        if not 1 <= self.queues_per_group <= 64:
            errors.append(f"queues_per_group: {self.queues_per_group} is outside 1..64")
        if not self.topic or len(self.topic) > 127 or not all(c.isalnum() or c in "%_|-" for c in self.topic):
            errors.append(f"topic: {self.topic!r} must be 1..127 characters of [A-Za-z0-9%_|-]")
        if not self.host.startswith("127."):
            errors.append(f"host: {self.host!r} is not a loopback address; nodes listen on 127.0.0.0/8 only")
        if errors:
            raise ConfigError("invalid topology:\n  " + "\n  ".join(errors))


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    role: str  # "namesrv" | "broker"
    port: int
    group: str = ""
    replica_index: int = 0
    raft_port: int = 0


@dataclass(frozen=True)
class Topology:
    spec: TopologySpec
    namesrvs: tuple[NodePlan, ...]
    brokers: tuple[NodePlan, ...]
    groups: tuple[str, ...] = field(default=())

    @property
    def nodes(self) -> tuple[NodePlan, ...]:
        return self.namesrvs + self.brokers

    def node(self, node_id: str) -> NodePlan:
        for plan in self.nodes:
            if plan.node_id == node_id:
                return plan
        raise ConfigError(f"unknown node {node_id!r}; nodes are {', '.join(p.node_id for p in self.nodes)}")


def group_name(index: int) -> str:
    return f"broker-{chr(ord('a') + index)}"


def plan_topology(spec: TopologySpec, port_source: "PortSource") -> Topology:
    """Assign ids and ports: ns-0.., and broker-a-0.. (group broker-a, replica 0)."""
    spec.validate()
    namesrvs = tuple(NodePlan(f"ns-{i}", "namesrv", port_source()) for i in range(spec.namesrv_count))
    brokers = []
    groups = tuple(group_name(g) for g in range(spec.group_count))
    for group in groups:
        for r in range(spec.replicas):
            raft_port = port_source() if spec.replicas > 1 else 0
            brokers.append(NodePlan(f"{group}-{r}", "broker", port_source(), group, r, raft_port))
    return Topology(spec, namesrvs, tuple(brokers), groups)


class PortSource:
    """Hands out free loopback ports, never the same one twice within one plan."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._given: set[int] = set()

    def __call__(self) -> int:
        from cluster.local.process import free_port

        while True:
            port = free_port(self._host)
            if port not in self._given:
                self._given.add(port)
                return port
