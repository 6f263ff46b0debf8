"""Node configurations of the embedded backend, and the timing profiles.

A node process reads one JSON file (``python -m cluster.local.node CONFIG``) that is the ``asdict`` of a
NamesrvConfig or BrokerConfig. Timings default to RocketMQ's and DLedger's own; the ``fast`` profile scales
every timer by the same factor so that the ratios between them stay as in production.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

Role = Literal["namesrv", "broker"]


@dataclass(frozen=True)
class Timing:
    """Every timer of the cluster, in seconds."""

    #: NameServer: how often it scans for silent brokers (RocketMQ 4.9: 10 s).
    namesrv_scan_interval: float = 10.0
    #: NameServer: a broker silent this long is dropped (BROKER_CHANNEL_EXPIRED_TIME, 120 s).
    broker_expiry: float = 120.0
    #: Broker: re-registration period with every NameServer (registerNameServerPeriod, 30 s).
    register_interval: float = 30.0
    #: Broker: timeout of one registration call (registerBrokerTimeoutMills, 6 s in 4.9.8).
    register_timeout: float = 6.0
    #: Client: route refresh period (pollNameServerInterval, 30 s).
    route_poll_interval: float = 30.0
    #: Client: heartbeat to brokers (heartbeatBrokerInterval, 30 s).
    client_heartbeat_interval: float = 30.0
    #: Broker and client: request timeout (mqClientApiTimeout, 3 s).
    rpc_timeout: float = 3.0
    #: Raft: leader heartbeat period (DLedger heartBeatTimeIntervalMs, 2 s).
    raft_heartbeat_interval: float = 2.0
    #: Raft: missed heartbeats before a follower stands for election (maxHeartBeatLeak, 3).
    raft_max_heartbeat_leak: int = 3
    #: Raft: random wait before asking for votes (minVoteIntervalMs/maxVoteIntervalMs, 300-1000 ms).
    raft_vote_min: float = 0.3
    raft_vote_max: float = 1.0
    #: Raft: how long a leader waits for a quorum ack of an append (maxWaitAckTimeMs, 2.5 s).
    raft_max_wait_ack: float = 2.5
    #: Long polling: longest hold of a suspended pull (BROKER_SUSPEND_MAX_TIME_MILLIS, 15 s).
    pull_suspend_max: float = 15.0
    #: Server side: idle connections are closed after this (serverChannelMaxIdleTimeSeconds, 120 s).
    channel_idle_timeout: float = 120.0

    def scaled(self, factor: float) -> Timing:
        """Every failure-detection and periodic timer multiplied by ``factor``.

        Counts (heartbeat leak) and request timeouts stay: a loaded 2-core test machine still needs the
        full time to answer a request, and a shorter timeout would only turn slowness into errors."""
        changes = {f.name: getattr(self, f.name) * factor for f in fields(self)
                   if isinstance(getattr(self, f.name), float) and f.name not in _UNSCALED}
        return replace(self, **changes)


_UNSCALED = frozenset({"register_timeout", "rpc_timeout", "raft_max_wait_ack", "channel_idle_timeout"})

#: ``fast`` divides every periodic and failure-detection timer by 10: expiry 12 s, register 3 s,
#: Raft heartbeat 200 ms (leader lost after 600 ms), votes 30-100 ms.
TIMING_PROFILES: dict[str, Timing] = {"default": Timing(), "fast": Timing().scaled(0.1)}


def timing_profile(name: str) -> Timing:
    from harness.errors import ConfigError

    try:
        return TIMING_PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown timing profile {name!r}; choose one of {sorted(TIMING_PROFILES)}") from None


@dataclass(frozen=True)
class TopicSpec:
    name: str
    read_queue_nums: int = 8
    write_queue_nums: int = 8
    perm: int = 6


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """What every node has: an id, a listen address, a data directory and a log file."""

    role: Role
    node_id: str
    host: str
    port: int
    data_dir: str
    log_file: str
    timing: Timing = field(default_factory=Timing)
    #: The supervising process; the node exits when it dies (0 = live on its own, as after ``rmqh up``).
    parent_pid: int = 0

    @property
    def listen_addr(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class NamesrvConfig(NodeConfig):
    role: Role = "namesrv"


@dataclass(frozen=True, kw_only=True)
class BrokerConfig(NodeConfig):
    role: Role = "broker"
    cluster_name: str = "DefaultCluster"
    #: The broker group (brokerName): every replica of a group shares it.
    broker_name: str = "broker-a"
    #: 0 for the master of a single-replica group; with replication the role decides.
    broker_id: int = 0
    #: The address registered with NameServers and written as STOREHOST: the node's proxy when proxied.
    advertised_addr: str = ""
    #: The NameServer addresses this broker registers with (each may be a proxy of its own).
    namesrv_addrs: tuple[str, ...] = ()
    topics: tuple[TopicSpec, ...] = ()
    auto_create_topic: bool = True
    #: Queue count of TBW102 (broker defaultTopicQueueNums).
    default_topic_queue_nums: int = 8
    slave_read_enable: bool = False
    #: With slave_read_enable, a pull this far behind is sent to a slave. RocketMQ compares the distance to
    #: RAM x accessMessageInMemoryMaxRatio (40 %) since such data is no longer in the page cache; the
    #: embedded store has no such limit, so the threshold is explicit: commit-log bytes behind the end ...
    slave_read_lag_bytes: int = 64 * 1024 * 1024
    #: ... or, when > 0, messages behind the end of the pulled queue.
    slave_read_lag_messages: int = 0
    #: Raft group: this replica's id (n0, n1, ...) and every replica's peer address, self included.
    raft_self_id: str = ""
    raft_peers: dict[str, str] = field(default_factory=dict)
    #: Where this replica listens for peer (Raft) traffic; peers reach it at raft_peers[raft_self_id].
    raft_port: int = 0

    @property
    def store_host(self) -> str:
        return self.advertised_addr or self.listen_addr


def dump_config(config: NodeConfig, path: Path) -> None:
    path.write_text(json.dumps(asdict(config), indent=2))


def load_config(path: Path) -> NamesrvConfig | BrokerConfig:
    raw: dict[str, Any] = json.loads(Path(path).read_text())
    raw["timing"] = Timing(**raw.get("timing", {}))
    if raw.get("role") == "namesrv":
        return NamesrvConfig(**raw)
    if raw.get("role") == "broker":
        raw["topics"] = tuple(TopicSpec(**t) for t in raw.get("topics", ()))
        raw["namesrv_addrs"] = tuple(raw.get("namesrv_addrs", ()))
        return BrokerConfig(**raw)
    raise ValueError(f"{path}: field 'role' must be 'namesrv' or 'broker', not {raw.get('role')!r}")
