"""Send handlers: SEND_MESSAGE (long names), SEND_MESSAGE_V2 (a..n), SEND_BATCH_MESSAGE, and
CONSUMER_SEND_MSG_BACK.

The send path runs synchronously inside the handler (no task per request): parse, resolve the topic and
queue, build the records, append, answer. Only with a replication layer does the answer wait (for the
commit): then the handler returns None and the answer leaves on the connection when the commit is known.
"""
from __future__ import annotations

import logging
import random
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cluster.local.broker_common import (
    RETRY_PREFIX, RequestRejected, dlq_topic, field_bool, field_int, field_str, guarded, response, retry_topic,
)
from cluster.local.records import NewMessage, join_properties, pack_host, split_batch_body, tags_code_of
from cluster.local.storemeta import TopicConfig
from harness.remoting.codes import PERM_READ, PERM_WRITE, RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand
from harness.remoting.message import (
    MAX_PROPERTIES_LENGTH, PROPERTY_CLUSTER, PROPERTY_ORIGIN_MESSAGE_ID, PROPERTY_RECONSUME_TIME,
    PROPERTY_RETRY_TOPIC, MessageDecodeError, decode_properties, decode_stored_message, encode_properties,
)

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.server import Connection, RemotingServer
    from cluster.local.store import PutResult

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: SubscriptionGroupConfig.retryMaxTimes: a message goes to the DLQ after this many redeliveries.
DEFAULT_MAX_RECONSUME_TIMES = 16
_V1_NAMES = ("producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId", "sysFlag",
             "bornTimestamp", "flag", "properties", "reconsumeTimes", "unitMode", "maxReconsumeTimes")
_V2_NAMES = tuple("abcdefghijkl")
_Q = struct.Struct(">q")


@dataclass(slots=True)
class SendHeader:
    group: str
    topic: str
    default_topic: str
    default_queue_nums: int
    queue_id: int
    sys_flag: int
    born_timestamp: int
    flag: int
    properties: str
    reconsume_times: int
    max_reconsume_times: int | None


def parse_send_header(ext: dict[str, str], v2: bool) -> SendHeader:
    """SendMessageRequestHeader(V2): fields a..h are @CFNotNull, i..l optional."""
    n = _V2_NAMES if v2 else _V1_NAMES
    try:  # the hot path: every field present and well formed
        max_reconsume = ext.get(n[11])
        return SendHeader(ext[n[0]], ext[n[1]], ext[n[2]], int(ext[n[3]]), int(ext[n[4]]), int(ext[n[5]]),
                          int(ext[n[6]]), int(ext[n[7]]), ext.get(n[8]) or "", int(ext.get(n[9]) or 0),
                          None if max_reconsume is None else int(max_reconsume))
    except (KeyError, ValueError):
        return _parse_send_header_precisely(ext, n, v2)


def _parse_send_header_precisely(ext: dict[str, str], n: tuple[str, ...], v2: bool) -> SendHeader:
    """The same fields again, one by one, so the error names the field that is missing or garbled."""

    def alias(i: int) -> str:
        return _V1_NAMES[i] if v2 else ""

    max_reconsume = ext.get(n[11])
    return SendHeader(
        group=field_str(ext, n[0], alias(0)), topic=field_str(ext, n[1], alias(1)),
        default_topic=field_str(ext, n[2], alias(2)), default_queue_nums=field_int(ext, n[3], alias(3)),
        queue_id=field_int(ext, n[4], alias(4)), sys_flag=field_int(ext, n[5], alias(5)),
        born_timestamp=field_int(ext, n[6], alias(6)), flag=field_int(ext, n[7], alias(7)),
        properties=ext.get(n[8]) or "", reconsume_times=field_int(ext, n[9], alias(9), default=0),
        max_reconsume_times=None if max_reconsume is None else field_int(ext, n[11], alias(11)))


class SendProcessor:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.store
        self.topics = broker.topics
        self._cluster_suffix = f"{PROPERTY_CLUSTER}\x01{broker.config.cluster_name}"
        self._store_host = self.store.store_host

    def register(self, server: RemotingServer) -> None:
        server.register(RequestCode.SEND_MESSAGE, guarded(lambda req, conn: self.send(req, conn, False, False)))
        server.register(RequestCode.SEND_MESSAGE_V2, guarded(lambda req, conn: self.send(req, conn, True, False)))
        server.register(RequestCode.SEND_BATCH_MESSAGE,
                        guarded(lambda req, conn: self.send(req, conn, True, True)))
        server.register(RequestCode.CONSUMER_SEND_MSG_BACK, guarded(self.send_back))

    # ------------------------------------------------------------------ send
    def send(self, request: RemotingCommand, conn: Connection, v2: bool, batch: bool) -> RemotingCommand | None:
        self.broker.check_writable()
        h = parse_send_header(request.ext_fields, v2)
        batch = batch or request.ext_fields.get("m" if v2 else "batch") == "true"
        if len(request.body) > MAX_MESSAGE_SIZE:
            raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL, f"the message body size {len(request.body)} "
                                  f"is over the max value {MAX_MESSAGE_SIZE}")
        config = self.topics.for_send(h.topic, h.default_topic, h.default_queue_nums)
        topic, queue_id = h.topic, h.queue_id
        if topic.startswith(RETRY_PREFIX):
            if batch:
                raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL,
                                      f"batch request does not support retry group {topic}")
            config, queue_id = self._retry_or_dlq(h, config, request.version)
            topic = config.topic_name
        queue_id = self._write_queue(config, queue_id, h.group)
        outer = self._with_cluster(h.properties)
        if len(outer) > MAX_PROPERTIES_LENGTH:
            raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL,
                                  f"message properties length {len(outer)} is over {MAX_PROPERTIES_LENGTH}")
        if batch:
            messages = self._batch_messages(request.body, outer, h)
        else:
            messages = [NewMessage(request.body, outer, h.flag, h.sys_flag, h.born_timestamp, h.reconsume_times,
                                   tags_code_of(h.properties))]
        result = self.broker.put(topic, queue_id, messages, born_host_of(conn))
        return self.broker.answer_after_commit(request, conn, result, self._send_response)

    def _write_queue(self, config: TopicConfig, queue_id: int, group: str) -> int:
        if not config.writable:
            raise RequestRejected(ResponseCode.NO_PERMISSION,
                                  f"the topic[{config.topic_name}] sending message is forbidden")
        if queue_id < 0:
            return random.randrange(config.write_queue_nums) if config.write_queue_nums > 0 else 0
        if queue_id >= config.write_queue_nums:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR,
                                  f"request queueId[{queue_id}] is illegal, topic:[{config.topic_name}] "
                                  f"topicConfig.writeQueueNums:[{config.write_queue_nums}] producer:[{group}]")
        return queue_id

    def _retry_or_dlq(self, h: SendHeader, config: TopicConfig, version: int) -> tuple[TopicConfig, int]:
        """A send to %RETRY%group past its max reconsume times goes to %DLQ%group (handleRetryAndDLQ)."""
        max_times = DEFAULT_MAX_RECONSUME_TIMES
        if h.max_reconsume_times is not None and version >= 121:  # honoured from client V3_4_9 on
            max_times = h.max_reconsume_times
        if h.reconsume_times < max_times:
            return config, h.queue_id
        dlq = self.topics.ensure(dlq_topic(h.topic[len(RETRY_PREFIX):]), 1, PERM_READ | PERM_WRITE)
        return dlq, 0

    def _with_cluster(self, properties: str) -> bytes:
        if not properties:
            return self._cluster_suffix.encode()
        if PROPERTY_CLUSTER + "\x01" in properties:  # e.g. a message re-sent as is: keep one CLUSTER
            props = decode_properties(properties)
            props[PROPERTY_CLUSTER] = self.broker.config.cluster_name
            properties = encode_properties(props)
            return properties.encode()
        sep = "" if properties.endswith("\x02") else "\x02"
        return (properties + sep + self._cluster_suffix).encode()

    def _batch_messages(self, body: bytes, outer: bytes, h: SendHeader) -> list[NewMessage]:
        try:
            items = split_batch_body(body)
        except (ValueError, struct.error) as exc:
            raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL, str(exc)) from None
        if not items:
            raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL, "batch body holds no message")
        messages = []
        for flag, item_body, props in items:
            joined = join_properties(props, outer)
            if len(joined) > MAX_PROPERTIES_LENGTH:
                raise RequestRejected(ResponseCode.MESSAGE_ILLEGAL,
                                      f"message properties length {len(joined)} is over {MAX_PROPERTIES_LENGTH}")
            code = tags_code_of(props.decode(errors="replace")) if b"TAGS" in props else 0
            messages.append(NewMessage(item_body, joined, flag, h.sys_flag, h.born_timestamp, h.reconsume_times,
                                       code))
        return messages

    def _send_response(self, request: RemotingCommand, result: PutResult) -> RemotingCommand:
        host = self._store_host
        ids = ",".join((host + _Q.pack(p)).hex().upper() for p in result.positions)
        return response(request, ResponseCode.SUCCESS, None, {
            "msgId": ids, "queueId": str(result.queue_id), "queueOffset": str(result.queue_offset),
            "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"})

    # ------------------------------------------------------------------ send back
    def send_back(self, request: RemotingCommand, conn: Connection) -> RemotingCommand | None:
        """Redeliver a consumed message through %RETRY%group, or %DLQ%group once it was retried enough.

        Delay levels are not implemented: the retry is visible at once instead of after 10 s, 30 s, ..."""
        self.broker.check_writable()
        ext = request.ext_fields
        offset, group = field_int(ext, "offset"), field_str(ext, "group")
        delay_level = field_int(ext, "delayLevel", default=0)
        record = self.store.read_message(offset)
        if record is None:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"look message by offset failed, {offset}")
        try:
            msg = decode_stored_message(record, decompress=False)
        except MessageDecodeError as exc:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"message at offset {offset} is corrupt: {exc}")
        max_times = DEFAULT_MAX_RECONSUME_TIMES
        if request.version >= 121 and "maxReconsumeTimes" in ext:
            max_times = field_int(ext, "maxReconsumeTimes")
        if msg.reconsume_times >= max_times or delay_level < 0:
            config = self.topics.ensure(dlq_topic(group), 1, PERM_READ | PERM_WRITE)
        else:
            config = self.topics.ensure(retry_topic(group), 1, PERM_READ | PERM_WRITE)
        if not config.writable:
            raise RequestRejected(ResponseCode.NO_PERMISSION,
                                  f"the topic[{config.topic_name}] sending message is forbidden")
        props = dict(msg.properties)
        props.setdefault(PROPERTY_RETRY_TOPIC, msg.topic)
        props[PROPERTY_ORIGIN_MESSAGE_ID] = props.get(PROPERTY_ORIGIN_MESSAGE_ID) or ext.get("originMsgId") \
            or msg.offset_msg_id
        props[PROPERTY_RECONSUME_TIME] = str(msg.reconsume_times + 1)
        new = NewMessage(msg.body, encode_properties(props).encode(), msg.flag, msg.sys_flag, msg.born_timestamp,
                         msg.reconsume_times + 1, tags_code_of(encode_properties(props)))
        born = pack_host(msg.born_host.ip, msg.born_host.port)
        result = self.broker.put(config.topic_name, 0, [new], born)
        return self.broker.answer_after_commit(request, conn, result,
                                               lambda req, _r: response(req, ResponseCode.SUCCESS))


def born_host_of(conn: Connection) -> bytes:
    """BORNHOST is the producer's TCP peer address, packed once per connection."""
    packed = conn.attributes.get("born_host")
    if packed is None:
        host, _, port = conn.peer.rpartition(":")
        try:
            packed = pack_host(host.strip("[]"), int(port))
        except ValueError:
            packed = pack_host("0.0.0.0", 0)
        conn.attributes["born_host"] = packed
    return packed  # type: ignore[return-value]
