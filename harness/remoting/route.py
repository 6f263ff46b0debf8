"""Topic routes and cluster info as NameServers return them, and the queue choices made from them.

Parsing is tolerant of what real NameServers send: fastjson's bare numeric keys (``{0:"addr"}``, always in
ClusterInfo), ``topicSynFlag`` (up to 4.8.0) next to ``topicSysFlag``, and broker groups whose id 0 is
missing (a DLedger group between leaders, or ids like {0, 1, 3} after a failover).
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from harness.errors import RemotingConnectError
from harness.remoting import jsonbody
from harness.remoting.codes import MASTER_ID, PERM_READ, PERM_WRITE

#: Queues per broker a producer uses for a topic not created yet (producer defaultTopicQueueNums).
DEFAULT_TOPIC_QUEUE_NUMS = 4


class NoRouteError(RemotingConnectError):
    """No address to send to (no route, no master, no such broker id): nothing was sent."""


@dataclass(frozen=True, order=True)
class MessageQueue:
    """One queue of a topic on one broker group; orders as Java's MessageQueue (topic, broker, id)."""

    topic: str
    broker_name: str
    queue_id: int


@dataclass(frozen=True)
class QueueData:
    broker_name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0


@dataclass(frozen=True)
class BrokerData:
    cluster: str
    broker_name: str
    broker_addrs: dict[int, str] = field(default_factory=dict)

    @property
    def master_addr(self) -> str | None:
        return self.broker_addrs.get(MASTER_ID)

    def select_addr(self) -> str | None:
        """The master, or any replica when the group has none (Java selectBrokerAddr)."""
        if MASTER_ID in self.broker_addrs:
            return self.broker_addrs[MASTER_ID]
        return random.choice(list(self.broker_addrs.values())) if self.broker_addrs else None

    def addr_for_pull(self, broker_id: int) -> tuple[str, int] | None:
        """The suggested id, else id+1, else any replica (master first): the Java client's fallback."""
        for candidate in (broker_id, broker_id + 1):
            if candidate in self.broker_addrs:
                return self.broker_addrs[candidate], candidate
        if not self.broker_addrs:
            return None
        any_id = MASTER_ID if MASTER_ID in self.broker_addrs else min(self.broker_addrs)
        return self.broker_addrs[any_id], any_id


@dataclass(frozen=True)
class TopicRoute:
    topic: str
    queue_datas: tuple[QueueData, ...]
    brokers: dict[str, BrokerData]
    order_topic_conf: str | None = None
    #: True when built from TBW102 because the topic does not exist yet (the broker will create it).
    from_default_topic: bool = False

    def broker(self, broker_name: str) -> BrokerData:
        try:
            return self.brokers[broker_name]
        except KeyError:
            raise NoRouteError(f"topic {self.topic}: broker {broker_name} is not in the route") from None

    def master_addr(self, broker_name: str) -> str:
        addr = self.broker(broker_name).master_addr
        if addr is None:
            raise NoRouteError(f"topic {self.topic}: broker {broker_name} has no master (id 0) in the route")
        return addr

    def publish_queues(self) -> list[MessageQueue]:
        """Writable queues of groups with a master, by broker name; orderTopicConf overrides all that."""
        if self.order_topic_conf:
            return _order_conf_queues(self.topic, self.order_topic_conf)
        queues: list[MessageQueue] = []
        for qd in sorted(self.queue_datas, key=lambda q: q.broker_name):
            broker = self.brokers.get(qd.broker_name)
            if qd.perm & PERM_WRITE and broker is not None and broker.master_addr is not None:
                queues.extend(MessageQueue(self.topic, qd.broker_name, i) for i in range(qd.write_queue_nums))
        return queues

    def subscribe_queues(self) -> list[MessageQueue]:
        """Readable queues, sorted as the rebalance needs them."""
        return sorted(MessageQueue(self.topic, qd.broker_name, i)
                      for qd in self.queue_datas if qd.perm & PERM_READ for i in range(qd.read_queue_nums))

    def for_new_topic(self, topic: str, queue_nums: int = DEFAULT_TOPIC_QUEUE_NUMS) -> TopicRoute:
        """This (TBW102) route as a producer uses it for a topic the brokers will auto-create."""
        queue_datas = tuple(QueueData(q.broker_name, min(queue_nums, q.read_queue_nums),
                                      min(queue_nums, q.write_queue_nums), q.perm, q.topic_sys_flag)
                            for q in self.queue_datas)
        return TopicRoute(topic, queue_datas, self.brokers, None, from_default_topic=True)


def _order_conf_queues(topic: str, conf: str) -> list[MessageQueue]:
    queues: list[MessageQueue] = []
    for item in conf.split(";"):
        name, sep, nums = item.strip().partition(":")
        if sep and nums.strip().isdigit():
            queues.extend(MessageQueue(topic, name, i) for i in range(int(nums)))
    return queues


class QueueSelector:
    """Round robin over a route's publish queues from a random start; a retry avoids the broker that just
    failed when another one exists (the Java producer's default, latency fault tolerance off)."""

    def __init__(self, route: TopicRoute) -> None:
        self.route = route
        self.queues = route.publish_queues()
        self._counter = itertools.count(random.randrange(1 << 16))

    def select(self, avoid_broker: str | None = None) -> MessageQueue:
        n = len(self.queues)
        if n == 0:
            raise NoRouteError(f"topic {self.route.topic}: no writable queue on a broker with a master")
        if avoid_broker is not None:
            for _ in range(n):
                queue = self.queues[next(self._counter) % n]
                if queue.broker_name != avoid_broker:
                    return queue
        return self.queues[next(self._counter) % n]


# ---------------------------------------------------------------- parsing

def parse_topic_route(topic: str, body: bytes) -> TopicRoute:
    data = jsonbody.loads(body) if body else {}
    queue_datas = tuple(_parse_queue_data(q) for q in data.get("queueDatas") or ())
    brokers = {b.broker_name: b for b in (_parse_broker_data(raw) for raw in data.get("brokerDatas") or ())}
    return TopicRoute(topic, queue_datas, brokers, data.get("orderTopicConf") or None)


def _parse_queue_data(raw: dict[str, Any]) -> QueueData:
    sys_flag = raw.get("topicSysFlag", raw.get("topicSynFlag", 0))
    return QueueData(str(raw["brokerName"]), int(raw.get("readQueueNums", 0)),
                     int(raw.get("writeQueueNums", 0)), int(raw.get("perm", 0)), int(sys_flag or 0))


def _parse_broker_data(raw: dict[str, Any]) -> BrokerData:
    addrs = {int(k): str(v) for k, v in (raw.get("brokerAddrs") or {}).items() if v}
    return BrokerData(str(raw.get("cluster", "")), str(raw["brokerName"]), addrs)


@dataclass(frozen=True)
class ClusterInfo:
    brokers: dict[str, BrokerData]
    clusters: dict[str, tuple[str, ...]]

    def masters(self, cluster: str | None = None) -> dict[str, str]:
        """brokerName -> master address, for one cluster or all; groups without a master are left out."""
        names = self.clusters.get(cluster, ()) if cluster is not None else tuple(self.brokers)
        return {name: addr for name in names
                if name in self.brokers and (addr := self.brokers[name].master_addr) is not None}


def parse_cluster_info(body: bytes) -> ClusterInfo:
    """GET_BROKER_CLUSTER_INFO: always fastjson's bare numeric keys on real NameServers."""
    data = jsonbody.loads(body) if body else {}
    brokers = {name: _parse_broker_data({"brokerName": name, **raw})
               for name, raw in (data.get("brokerAddrTable") or {}).items()}
    clusters = {name: tuple(members or ()) for name, members in (data.get("clusterAddrTable") or {}).items()}
    return ClusterInfo(brokers, clusters)
