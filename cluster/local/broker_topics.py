"""Topic configs as the broker manages them: defaults at start, auto-creation on send, system topics.

Every change is persisted by the TopicTable and reported through ``on_change`` so the broker re-registers
with its NameServers at once (RocketMQ's registerIncrementBrokerData after a topic is created). In DLedger
mode ``replicate`` first appends the change to the Raft log (it raises on a replica that is not the master),
so every replica learns it; ``update`` then returns the future of that commit.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cluster.local.broker_common import RETRY_PREFIX, RequestRejected, check_topic_name
from cluster.local.config import BrokerConfig
from cluster.local.storemeta import TopicConfig, TopicTable
from harness.remoting.codes import AUTO_CREATE_TOPIC_KEY, PERM_INHERIT, PERM_READ, PERM_WRITE, ResponseCode

logger = logging.getLogger(__name__)

FAQ_APPLY_TOPIC = "See http://rocketmq.apache.org/docs/faq/ for further details."
Replicate = Callable[[TopicConfig], "asyncio.Future[tuple[int, str] | None]"]


class TopicManager:
    def __init__(self, table: TopicTable, config: BrokerConfig, on_change: Callable[[], None]) -> None:
        self.table = table
        self.config = config
        self.on_change = on_change
        self.replicate: Replicate | None = None

    def init_defaults(self) -> None:
        """TBW102 when auto-creation is on, then every configured topic that does not exist yet."""
        if self.config.auto_create_topic:
            nums = self.config.default_topic_queue_nums
            tbw = TopicConfig(AUTO_CREATE_TOPIC_KEY, nums, nums, PERM_READ | PERM_WRITE | PERM_INHERIT)
            if self.table.get(AUTO_CREATE_TOPIC_KEY) != tbw:
                self.table.put(tbw)
        for spec in self.config.topics:
            if self.table.get(spec.name) is None:
                self.table.put(TopicConfig(spec.name, spec.read_queue_nums, spec.write_queue_nums, spec.perm))

    def get(self, topic: str) -> TopicConfig | None:
        return self.table.get(topic)

    def for_send(self, topic: str, default_topic: str, default_queue_nums: int) -> TopicConfig:
        """The topic's config, auto-creating it from ``default_topic`` (TBW102) when that is allowed."""
        config = self.table.get(topic)
        if config is not None:
            return config
        check_topic_name(topic)
        if topic.startswith(RETRY_PREFIX):
            return self.ensure(topic, 1, PERM_READ | PERM_WRITE)
        default = self.table.get(default_topic)
        inherit = default is not None and bool(default.perm & PERM_INHERIT)
        if default_topic == AUTO_CREATE_TOPIC_KEY and not self.config.auto_create_topic:
            inherit = False
        if default is None or not inherit:
            raise RequestRejected(ResponseCode.TOPIC_NOT_EXIST,
                                  f"topic[{topic}] not exist, apply first please! {FAQ_APPLY_TOPIC}")
        nums = max(0, min(default_queue_nums, default.write_queue_nums))
        config = TopicConfig(topic, nums, nums, default.perm & ~PERM_INHERIT)
        self.update(config)
        logger.info("topic %s auto-created from %s with %s queues", topic, default_topic, nums)
        return config

    def ensure(self, topic: str, queue_nums: int, perm: int) -> TopicConfig:
        """A system topic (retry, DLQ): created with ``queue_nums`` queues if missing."""
        config = self.table.get(topic)
        if config is None:
            check_topic_name(topic)  # the group name inside comes from a client, and becomes a directory name
            config = TopicConfig(topic, queue_nums, queue_nums, perm)
            self.update(config)
            logger.info("topic %s created with %s queues", topic, queue_nums)
        return config

    def update(self, config: TopicConfig) -> asyncio.Future[tuple[int, str] | None] | None:
        """Create or replace a topic; with replication, the future of its commit (None outcome = committed)."""
        committed = self.replicate(config) if self.replicate is not None else None
        self.table.put(config)
        self.on_change()
        return committed
