"""The running cluster's state file: the addresses and pids other commands and the locustfile read.

Lives at ``$RMQH_HOME/cluster/state.json`` (RMQH_HOME defaults to ``./.rmqh``). Written atomically and
re-written after every node start, so a harness killed half-way still leaves a file ``rmqh down`` can use.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import ClusterError
from harness.rundir import write_json_atomic

STATE_VERSION = 1


def rmqh_home() -> Path:
    return Path(os.environ.get("RMQH_HOME", ".rmqh")).resolve()


def default_state_dir() -> Path:
    return rmqh_home() / "cluster"


@dataclass
class NodeState:
    node_id: str
    role: str
    host: str
    port: int
    #: The address clients use: the node itself, or its proxy once proxies front it.
    addr: str
    pid: int = 0
    create_time: float = 0.0
    group: str = ""
    replica_index: int = 0
    raft_port: int = 0
    config_path: str = ""
    log_file: str = ""
    data_dir: str = ""


@dataclass
class ProxyServerState:
    """The cluster's Toxiproxy server (``toxiproxy-server`` from PATH, or the built-in one)."""

    kind: str
    pid: int
    create_time: float
    host: str
    port: int
    log_file: str = ""

    @property
    def api(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class LinkState:
    """One proxy of the link plan (see cluster/links.py): who dials whom through which listen address."""

    name: str
    kind: str  # "client" | "ns-link" | "peer-link"
    from_node: str
    to_node: str
    listen: str
    upstream: str


@dataclass
class ClusterState:
    state_dir: str
    backend: str = "local"
    profile: str = "default"
    cluster_name: str = "DefaultCluster"
    topic: str = ""
    created_utc: str = ""
    nodes: list[NodeState] = field(default_factory=list)
    #: None when the cluster runs without proxies (``RMQH_PROXY=0``).
    proxy: ProxyServerState | None = None
    links: list[LinkState] = field(default_factory=list)
    version: int = STATE_VERSION

    @property
    def namesrv_addrs(self) -> list[str]:
        return [n.addr for n in self.nodes if n.role == "namesrv"]

    @property
    def brokers(self) -> list[NodeState]:
        return [n for n in self.nodes if n.role == "broker"]

    def link(self, name: str) -> LinkState:
        for link in self.links:
            if link.name == name:
                return link
        from harness.errors import ConfigError

        raise ConfigError(f"unknown link {name!r}; links are {', '.join(k.name for k in self.links) or 'none'}")

    def node(self, node_id: str) -> NodeState:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        from harness.errors import ConfigError

        raise ConfigError(f"unknown node {node_id!r}; nodes are {', '.join(n.node_id for n in self.nodes)}")

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / "state.json"


def events_path(state_dir: Path) -> Path:
    """The running cluster's own event history (net-ready, fault-inject, fault-heal ...), JSONL."""
    return Path(state_dir) / "events.jsonl"


def save_state(state: ClusterState) -> None:
    write_json_atomic(state.path, asdict(state))


def load_state(state_dir: Path | None = None) -> ClusterState:
    path = (state_dir or default_state_dir()) / "state.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterError(f"no running cluster: {path} does not exist (start one with `rmqh up`)") from None
    except ValueError as exc:
        raise ClusterError(f"cluster state file {path} is not valid JSON: {exc}") from None
    try:
        raw["nodes"] = [NodeState(**n) for n in raw.get("nodes", [])]
        raw["proxy"] = ProxyServerState(**raw["proxy"]) if raw.get("proxy") else None
        raw["links"] = [LinkState(**link) for link in raw.get("links", [])]
        return ClusterState(**raw)
    except TypeError as exc:
        raise ClusterError(f"cluster state file {path} has an unexpected shape: {exc}") from None


def state_exists(state_dir: Path | None = None) -> bool:
    return ((state_dir or default_state_dir()) / "state.json").exists()
