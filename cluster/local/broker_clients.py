"""Producer and consumer groups as the broker learns them from heartbeats (HEART_BEAT, UNREGISTER_CLIENT,
GET_CONSUMER_LIST_BY_GROUP), with expiry and NOTIFY_CONSUMER_IDS_CHANGED.

A client is tracked per connection (RocketMQ keys clients by channel). It goes away when its connection
closes, when it unregisters, or when it has been silent for ``channel_idle_timeout`` (120 s). Whenever a
consumer group's membership or topic set changes, every remaining member gets a oneway
NOTIFY_CONSUMER_IDS_CHANGED so it rebalances at once.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cluster.local.broker_common import RequestRejected, field_str, guarded, response, retry_topic
from harness.remoting import jsonbody
from harness.remoting.codes import PERM_READ, PERM_WRITE, VERSION_V4_9_8, RequestCode, ResponseCode
from harness.remoting.frame import FLAG_ONEWAY, RemotingCommand
from harness.remoting.message import java_string_hash

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.server import Connection, RemotingServer

logger = logging.getLogger(__name__)
_notify_opaques = itertools.count(1)


@dataclass(frozen=True)
class Subscription:
    topic: str
    sub_string: str
    #: Tags hash codes to match; None means every message ("*").
    codes: frozenset[int] | None
    sub_version: int = 0
    expression_type: str = "TAG"


_parsed: dict[str, frozenset[int] | None] = {}


def parse_tag_expression(expression: str | None) -> frozenset[int] | None:
    """FilterAPI.buildSubscriptionData for TAG: "*" (or empty) matches all, else "A || B" -> hash codes."""
    key = expression or "*"
    if key in _parsed:
        return _parsed[key]
    tags = [t.strip() for t in key.split("||") if t.strip()]
    codes = None if key.strip() == "*" or not tags else frozenset(java_string_hash(t) for t in tags)
    if len(_parsed) < 10_000:
        _parsed[key] = codes
    return codes


def subscription_from_json(data: dict[str, Any]) -> Subscription:
    sub_string = str(data.get("subString") or "*")
    code_set = data.get("codeSet")
    if sub_string.strip() != "*" and isinstance(code_set, list) and code_set:
        codes: frozenset[int] | None = frozenset(int(c) for c in code_set)
    else:
        codes = parse_tag_expression(sub_string)
    return Subscription(str(data["topic"]), sub_string, codes, int(data.get("subVersion") or 0),
                        str(data.get("expressionType") or "TAG"))


@dataclass
class ClientChannel:
    client_id: str
    conn: Connection
    last_seen: float


@dataclass
class ConsumerGroup:
    channels: dict[int, ClientChannel] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    consume_type: str = "CONSUME_PASSIVELY"
    message_model: str = "CLUSTERING"


class ClientManager:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.idle_timeout = broker.config.timing.channel_idle_timeout
        self.consumers: dict[str, ConsumerGroup] = {}
        self.producers: dict[str, dict[int, ClientChannel]] = {}

    def register(self, server: RemotingServer) -> None:
        server.register(RequestCode.HEART_BEAT, guarded(self.heartbeat))
        server.register(RequestCode.UNREGISTER_CLIENT, guarded(self.unregister_client))
        server.register(RequestCode.GET_CONSUMER_LIST_BY_GROUP, guarded(self.consumer_list))
        server.on_connection_closed(self.connection_closed)

    # ------------------------------------------------------------------ queries
    def subscription(self, group: str, topic: str) -> Subscription | None:
        info = self.consumers.get(group)
        return None if info is None else info.subscriptions.get(topic)

    def has_group(self, group: str) -> bool:
        return group in self.consumers

    def consumer_ids(self, group: str) -> list[str]:
        info = self.consumers.get(group)
        return sorted({c.client_id for c in info.channels.values()}) if info else []

    # ------------------------------------------------------------------ handlers
    def heartbeat(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        try:
            data = jsonbody.loads(request.body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            client_id = str(data["clientID"])
            consumers = [self._consumer_data(c) for c in data.get("consumerDataSet") or []]
            producers = [str(p["groupName"]) for p in data.get("producerDataSet") or []]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"heartbeat body is not valid HeartbeatData: "
                                  f"{type(exc).__name__}: {exc}") from None
        now = asyncio.get_running_loop().time()
        for group, consume_type, model, subs in consumers:
            self.broker.topics.ensure(retry_topic(group), 1, PERM_READ | PERM_WRITE)
            self._register_consumer(group, ClientChannel(client_id, conn, now), consume_type, model, subs)
        for group in producers:
            self.producers.setdefault(group, {})[conn.conn_id] = ClientChannel(client_id, conn, now)
        return response(request, ResponseCode.SUCCESS)

    @staticmethod
    def _consumer_data(data: dict[str, Any]) -> tuple[str, str, str, list[Subscription]]:
        subs = [subscription_from_json(s) for s in data.get("subscriptionDataSet") or []]
        return (str(data["groupName"]), str(data.get("consumeType") or "CONSUME_PASSIVELY"),
                str(data.get("messageModel") or "CLUSTERING"), subs)

    def _register_consumer(self, group: str, channel: ClientChannel, consume_type: str, model: str,
                           subs: list[Subscription]) -> None:
        info = self.consumers.setdefault(group, ConsumerGroup())
        info.consume_type, info.message_model = consume_type, model
        old = info.channels.get(channel.conn.conn_id)
        info.channels[channel.conn.conn_id] = channel
        changed = old is None or old.client_id != channel.client_id
        new_topics = {s.topic for s in subs}
        for sub in subs:
            current = info.subscriptions.get(sub.topic)
            if current is None:
                changed = True
            if current is None or sub.sub_version > current.sub_version:
                info.subscriptions[sub.topic] = sub
        for topic in [t for t in info.subscriptions if t not in new_topics]:
            del info.subscriptions[topic]
            changed = True
        if changed:
            logger.info("consumer group %s: client %s registered (%s members)", group, channel.client_id,
                        len(info.channels))
            self.notify_ids_changed(group)

    def unregister_client(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        ext = request.ext_fields
        field_str(ext, "clientID")
        if ext.get("producerGroup"):
            self.producers.get(ext["producerGroup"], {}).pop(conn.conn_id, None)
        group = ext.get("consumerGroup")
        if group:
            self._remove_consumer(group, conn.conn_id, "unregistered")
        return response(request, ResponseCode.SUCCESS)

    def consumer_list(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        group = field_str(request.ext_fields, "consumerGroup")
        ids = self.consumer_ids(group)
        if not ids:
            return response(request, ResponseCode.SYSTEM_ERROR, f"no consumer for this group, {group}")
        return response(request, ResponseCode.SUCCESS, body=jsonbody.dumps({"consumerIdList": ids}))

    # ------------------------------------------------------------------ membership changes
    def _remove_consumer(self, group: str, conn_id: int, why: str) -> None:
        info = self.consumers.get(group)
        if info is None or info.channels.pop(conn_id, None) is None:
            return
        logger.info("consumer group %s: a client left (%s), %s remain", group, why, len(info.channels))
        if not info.channels:
            del self.consumers[group]
        else:
            self.notify_ids_changed(group)

    def connection_closed(self, conn: Connection) -> None:
        for group in list(self.consumers):
            self._remove_consumer(group, conn.conn_id, "connection closed")
        for channels in self.producers.values():
            channels.pop(conn.conn_id, None)

    def notify_ids_changed(self, group: str) -> None:
        """NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member, as the Java broker does."""
        info = self.consumers.get(group)
        for channel in list(info.channels.values()) if info else []:
            channel.conn.send(RemotingCommand(
                code=RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, opaque=next(_notify_opaques), flag=FLAG_ONEWAY,
                language="JAVA", version=VERSION_V4_9_8, ext_fields={"consumerGroup": group}))

    def expire_idle(self) -> None:
        """Drop clients whose last heartbeat is older than the idle timeout (and close their connection)."""
        deadline = asyncio.get_running_loop().time() - self.idle_timeout
        for group, info in list(self.consumers.items()):
            for conn_id, channel in list(info.channels.items()):
                if channel.last_seen < deadline:
                    logger.info("consumer %s of group %s expired", channel.client_id, group)
                    channel.conn.close()
                    self._remove_consumer(group, conn_id, "expired")
        for channels in self.producers.values():
            for conn_id, channel in list(channels.items()):
                if channel.last_seen < deadline:
                    channel.conn.close()
                    del channels[conn_id]
