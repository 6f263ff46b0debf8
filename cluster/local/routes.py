"""The NameServer's route table (RocketMQ's RouteInfoManager), as pure data: no I/O, no clock of its own.

Tables, as in RocketMQ 4.9.8: clusterAddrTable (cluster -> brokerNames), brokerAddrTable (brokerName ->
BrokerData with brokerId -> addr), topicQueueTable (topic -> brokerName -> QueueData) and brokerLiveTable
(addr -> last registration, dataVersion, connection, haServerAddr). Callers pass ``now`` (monotonic seconds)
and a connection id; the NameServer does the sockets, the logging and the clock.

Removal follows 4.9.8 (and 5.x without acting master): a broker's topic queue data goes only when no broker of
its brokerName is left. A group that lost its master keeps its queue data in the route; clients skip such
queues for publishing (no id 0) but may still read from the slaves.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.remoting.codes import MASTER_ID, PERM_READ, PERM_WRITE


_INT_TEXT = re.compile(r"-?\d{1,19}")


def json_int(obj: dict[str, Any], key: str, default: int | None, where: str) -> int:
    """An integer field of a JSON object as fastjson would read it (numbers or numeric strings)."""
    value = obj.get(key, default)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}.{key}: expected an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class DataVersion:
    """A broker's topic-config version; equal versions mean "topics unchanged"."""

    timestamp: int = 0
    counter: int = 0
    #: 5.x only; None when the broker did not send it.
    state_version: int | None = None

    def same_as(self, other: DataVersion) -> bool:
        # 4.9.8 compares timestamp and counter; 5.x adds stateVersion (absent counts as 0).
        return (self.timestamp, self.counter, self.state_version or 0) == (
            other.timestamp, other.counter, other.state_version or 0)

    def to_json(self) -> dict[str, int]:
        out = {"counter": self.counter}
        if self.state_version is not None:
            out["stateVersion"] = self.state_version
        out["timestamp"] = self.timestamp
        return out

    @classmethod
    def from_json(cls, obj: object, where: str = "dataVersion") -> DataVersion:
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
        state = json_int(obj, "stateVersion", None, where) if obj.get("stateVersion") is not None else None
        return cls(timestamp=json_int(obj, "timestamp", 0, where), counter=json_int(obj, "counter", 0, where),
                   state_version=state)


@dataclass(frozen=True)
class TopicConfig:
    """The part of a broker's TopicConfig the NameServer keeps (defaults are TopicConfig's own)."""

    topic_name: str
    read_queue_nums: int = 16
    write_queue_nums: int = 16
    perm: int = PERM_READ | PERM_WRITE
    topic_sys_flag: int = 0

    @classmethod
    def from_json(cls, name: str, obj: object, where: str) -> TopicConfig:
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
        topic = obj.get("topicName", name)
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"{where}.topicName: expected a non-empty string, got {topic!r}")
        # Brokers before 4.9 spell the flag topicSynFlag.
        flag_key = "topicSysFlag" if "topicSysFlag" in obj else "topicSynFlag"
        return cls(topic, json_int(obj, "readQueueNums", 16, where), json_int(obj, "writeQueueNums", 16, where),
                   json_int(obj, "perm", PERM_READ | PERM_WRITE, where), json_int(obj, flag_key, 0, where))


@dataclass
class QueueData:
    broker_name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"brokerName": self.broker_name, "perm": self.perm, "readQueueNums": self.read_queue_nums,
                "topicSysFlag": self.topic_sys_flag, "writeQueueNums": self.write_queue_nums}


@dataclass
class BrokerData:
    cluster: str
    broker_name: str
    broker_addrs: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Integer keys: encode_body writes them bare (fastjson default) or quoted (standard JSON).
        return {"brokerAddrs": dict(sorted(self.broker_addrs.items())), "brokerName": self.broker_name,
                "cluster": self.cluster}


@dataclass
class BrokerLive:
    last_update: float
    data_version: DataVersion
    conn_id: int
    ha_server_addr: str
    # What the broker said about itself last time, kept so drops can be logged with name and id.
    cluster: str
    broker_name: str
    broker_id: int


@dataclass(frozen=True)
class RegisterResult:
    #: Filled only for a slave whose master is registered and alive (RegisterBrokerResponseHeader).
    master_addr: str | None = None
    ha_server_addr: str | None = None
    #: The address was not in the live table before (RocketMQ logs "new broker registered").
    first: bool = False
    #: The id this address held in its group before, when it changed (slave -> master switch).
    previous_id: int | None = None
    #: The address that held this id before, when another one did (e.g. the old master).
    replaced_addr: str | None = None
    topics_updated: bool = False

    @property
    def kind(self) -> str:
        """What the registration means, for logs: "role change", "new" or "periodic"."""
        if self.previous_id is not None or self.replaced_addr is not None:
            return "role change"
        return "new" if self.first else "periodic"


@dataclass(frozen=True)
class DroppedBroker:
    cluster: str
    broker_name: str
    broker_id: int
    addr: str
    conn_id: int
    last_update: float
    #: Its address was still listed in the group (False when another address had already taken its id).
    was_in_route: bool
    #: No broker of its brokerName is left: the group and its topic queue data are gone.
    group_removed: bool


class RouteTable:
    """RouteInfoManager without locks: the NameServer runs it on one event loop."""

    def __init__(self) -> None:
        self.cluster_addr_table: dict[str, set[str]] = {}
        self.broker_addr_table: dict[str, BrokerData] = {}
        self.topic_queue_table: dict[str, dict[str, QueueData]] = {}
        self.broker_live_table: dict[str, BrokerLive] = {}

    # ------------------------------------------------------------ registration

    def register_broker(self, *, cluster: str, broker_name: str, broker_id: int, addr: str, ha_server_addr: str,
                        data_version: DataVersion, topics: Iterable[TopicConfig] | None, conn_id: int,
                        now: float) -> RegisterResult:
        self.cluster_addr_table.setdefault(cluster, set()).add(broker_name)
        group = self.broker_addr_table.get(broker_name)
        register_first = group is None
        if group is None:
            group = self.broker_addr_table[broker_name] = BrokerData(cluster, broker_name)
        # The same address may hold only one id: a slave promoted to master drops its slave entry first.
        previous_id = next((i for i, a in group.broker_addrs.items() if a == addr and i != broker_id), None)
        group.broker_addrs = {i: a for i, a in group.broker_addrs.items() if not (a == addr and i != broker_id)}
        old_addr = group.broker_addrs.get(broker_id)
        group.broker_addrs[broker_id] = addr
        register_first = register_first or old_addr is None
        topics_updated = False
        if topics is not None and broker_id == MASTER_ID and (register_first or self.topic_config_changed(
                addr, data_version)):
            for config in topics:
                self._update_queue_data(broker_name, config)
            topics_updated = True
        first = addr not in self.broker_live_table
        self.broker_live_table[addr] = BrokerLive(now, data_version, conn_id, ha_server_addr, cluster,
                                                  broker_name, broker_id)
        master_addr, master_ha = self._master_of(group) if broker_id != MASTER_ID else (None, None)
        return RegisterResult(master_addr, master_ha, first, previous_id,
                              old_addr if old_addr not in (None, addr) else None, topics_updated)

    def _master_of(self, group: BrokerData) -> tuple[str | None, str | None]:
        master = group.broker_addrs.get(MASTER_ID)
        live = self.broker_live_table.get(master) if master else None
        return (master, live.ha_server_addr) if live else (None, None)

    def _update_queue_data(self, broker_name: str, config: TopicConfig) -> None:
        self.topic_queue_table.setdefault(config.topic_name, {})[broker_name] = QueueData(
            broker_name, config.read_queue_nums, config.write_queue_nums, config.perm, config.topic_sys_flag)

    def topic_config_changed(self, addr: str, data_version: DataVersion) -> bool:
        live = self.broker_live_table.get(addr)
        return live is None or not live.data_version.same_as(data_version)

    def data_version_of(self, addr: str) -> DataVersion | None:
        live = self.broker_live_table.get(addr)
        return live.data_version if live else None

    def touch(self, addr: str, now: float) -> None:
        """QUERY_DATA_VERSION with an unchanged version counts as a heartbeat."""
        live = self.broker_live_table.get(addr)
        if live is not None:
            live.last_update = now

    # ------------------------------------------------------------ removal

    def unregister_broker(self, *, cluster: str, broker_name: str, broker_id: int, addr: str) -> DroppedBroker:
        # 4.9.8 removes whatever address holds brokerId; 5.x only the entry holding this address. The 5.x rule
        # is kept so a stale unregister (an old master shutting down) cannot delete its successor.
        live = self.broker_live_table.pop(addr, None)
        group = self.broker_addr_table.get(broker_name)
        was_in_route = group is not None and group.broker_addrs.get(broker_id) == addr
        group_removed = False
        if group is not None and was_in_route:
            del group.broker_addrs[broker_id]
            group_removed = not group.broker_addrs and self._remove_group(broker_name)
        return DroppedBroker(cluster, broker_name, broker_id, addr, live.conn_id if live else 0,
                             live.last_update if live else 0.0, was_in_route, group_removed)

    def drop_connection(self, conn_id: int) -> list[DroppedBroker]:
        """The connection closed: every broker whose latest registration came over it goes at once."""
        addrs = [addr for addr, live in self.broker_live_table.items() if live.conn_id == conn_id]
        return [self._destroy(addr) for addr in addrs]

    def scan_expired(self, now: float, expiry: float) -> list[DroppedBroker]:
        """Brokers whose last registration is older than ``expiry`` seconds (scanNotActiveBroker)."""
        addrs = [addr for addr, live in self.broker_live_table.items() if live.last_update + expiry < now]
        return [self._destroy(addr) for addr in addrs]

    def _destroy(self, addr: str) -> DroppedBroker:
        # onChannelDestroy: the address leaves every table; the group goes when nothing of it is left.
        live = self.broker_live_table.pop(addr)
        was_in_route, group_removed = False, False
        for name, group in list(self.broker_addr_table.items()):
            ids = [i for i, a in group.broker_addrs.items() if a == addr]
            for i in ids:
                del group.broker_addrs[i]
            was_in_route = was_in_route or bool(ids)
            if ids and not group.broker_addrs:
                group_removed = self._remove_group(name) or group_removed
        return DroppedBroker(live.cluster, live.broker_name, live.broker_id, addr, live.conn_id,
                             live.last_update, was_in_route, group_removed)

    def _remove_group(self, broker_name: str) -> bool:
        self.broker_addr_table.pop(broker_name, None)
        for cluster, names in list(self.cluster_addr_table.items()):
            names.discard(broker_name)
            if not names:
                del self.cluster_addr_table[cluster]
        for topic, queues in list(self.topic_queue_table.items()):
            queues.pop(broker_name, None)
            if not queues:
                del self.topic_queue_table[topic]
        return True

    # ------------------------------------------------------------ queries

    def route_for(self, topic: str) -> dict[str, Any] | None:
        """TopicRouteData, or None (TOPIC_NOT_EXIST) unless both queue data and broker data exist."""
        queues = self.topic_queue_table.get(topic)
        if not queues:
            return None
        groups = [self.broker_addr_table[name] for name in sorted(queues) if name in self.broker_addr_table]
        if not groups:
            return None
        # Filter servers left RocketMQ in 4.x; brokers send an empty list and routes carry an empty table.
        return {"brokerDatas": [g.to_json() for g in groups], "filterServerTable": {},
                "queueDatas": [queues[name].to_json() for name in sorted(queues)]}

    def cluster_info(self) -> dict[str, Any]:
        """ClusterInfo: brokerAddrTable (brokerName -> BrokerData) and clusterAddrTable (cluster -> names)."""
        return {"brokerAddrTable": {name: self.broker_addr_table[name].to_json()
                                    for name in sorted(self.broker_addr_table)},
                "clusterAddrTable": {cluster: sorted(names)
                                     for cluster, names in sorted(self.cluster_addr_table.items())}}

    def all_topics(self) -> list[str]:
        return sorted(self.topic_queue_table)

    def topics_by_cluster(self, cluster: str) -> list[str]:
        names = self.cluster_addr_table.get(cluster, set())
        return sorted(topic for topic, queues in self.topic_queue_table.items() if names & queues.keys())

    def wipe_write_perm(self, broker_name: str) -> int:
        """Clear the write bit of every queue of the group; returns the number of topics touched."""
        return self._set_perm(broker_name, lambda perm: perm & ~PERM_WRITE)

    def add_write_perm(self, broker_name: str) -> int:
        # RocketMQ sets read+write outright (other bits are lost), not perm | write.
        return self._set_perm(broker_name, lambda perm: PERM_READ | PERM_WRITE)

    def _set_perm(self, broker_name: str, change: Callable[[int], int]) -> int:
        touched = 0
        for queues in self.topic_queue_table.values():
            queue = queues.get(broker_name)
            if queue is not None:
                queue.perm = change(queue.perm)
                touched += 1
        return touched


# ---------------------------------------------------------------- JSON as fastjson writes it

def encode_body(value: Any, *, quoted_keys: bool) -> bytes:
    """A JSON body in one of the two forms a 4.9.8 NameServer writes.

    ``quoted_keys=True`` is the standard form (BrowserCompatible: integer map keys quoted, non-ASCII escaped);
    ``False`` is fastjson's default, where integer map keys are written bare: ``{"brokerAddrs":{0:"a:1"}}``.
    """
    if quoted_keys:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()
    return _bare(value).encode()


def _bare(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_bare_key(k)}:{_bare(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_bare(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _bare_key(key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    return json.dumps(str(key), ensure_ascii=False)
