"""Client-side request builders and response parsers (sans-IO): what MQClient puts on the wire and how it
reads the answers. Header field names and value spellings follow section C of the protocol reference."""
from __future__ import annotations

import ipaddress
import itertools
import json
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.errors import ResponseError
from harness.remoting import jsonbody
from harness.remoting.codes import (AUTO_CREATE_TOPIC_KEY, PULL_FLAG_COMMIT_OFFSET, PULL_FLAG_SUBSCRIPTION,
                                    PULL_FLAG_SUSPEND, RequestCode, ResponseCode)
from harness.remoting.frame import MAX_FRAME_LENGTH, FrameError, RemotingCommand, stringify
from harness.remoting.message import (NAME_VALUE_SEPARATOR, PROPERTY_KEYS, PROPERTY_MAX_OFFSET,
                                      PROPERTY_MAX_RECONSUME_TIMES, PROPERTY_MIN_OFFSET, PROPERTY_RECONSUME_TIME,
                                      PROPERTY_SEPARATOR, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, PROPERTY_WAIT,
                                      BatchItem, MessageExt, decode_stored_messages, encode_batch_body,
                                      encode_properties, java_string_hash)
from harness.remoting.route import DEFAULT_TOPIC_QUEUE_NUMS, MessageQueue

RETRY_GROUP_TOPIC_PREFIX = "%RETRY%"
CLIENT_INNER_PRODUCER = "CLIENT_INNER_PRODUCER"

SEND_STATUS = {ResponseCode.SUCCESS: "SEND_OK", ResponseCode.FLUSH_DISK_TIMEOUT: "FLUSH_DISK_TIMEOUT",
               ResponseCode.FLUSH_SLAVE_TIMEOUT: "FLUSH_SLAVE_TIMEOUT",
               ResponseCode.SLAVE_NOT_AVAILABLE: "SLAVE_NOT_AVAILABLE"}
PULL_STATUS = {ResponseCode.SUCCESS: "FOUND", ResponseCode.PULL_NOT_FOUND: "NO_NEW_MSG",
               ResponseCode.PULL_RETRY_IMMEDIATELY: "NO_MATCHED_MSG", ResponseCode.PULL_OFFSET_MOVED: "OFFSET_ILLEGAL"}


@dataclass
class Message:
    topic: str
    body: bytes
    tags: str | None = None
    keys: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    flag: int = 0


@dataclass
class SendResult:
    status: str  # SEND_OK | FLUSH_DISK_TIMEOUT | FLUSH_SLAVE_TIMEOUT | SLAVE_NOT_AVAILABLE
    msg_id: str
    offset_msg_id: str
    queue: MessageQueue
    queue_offset: int
    broker_addr: str


@dataclass
class PullResult:
    status: str  # FOUND | NO_NEW_MSG | NO_MATCHED_MSG | OFFSET_ILLEGAL
    next_begin_offset: int
    min_offset: int
    max_offset: int
    suggest_which_broker_id: int
    messages: list[MessageExt]


class UniqIds:
    """UNIQ_KEY values in the MessageClientIDSetter layout, cheap enough for the send hot path:
    ip(4) pid(2) salt(4) are fixed hex, ms-since-month-start(4) and a counter(2) vary."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        packed = ipaddress.ip_address(ip).packed[-4:] + (os.getpid() & 0xFFFF).to_bytes(2, "big") + os.urandom(4)
        self._prefix = packed.hex().upper()
        self._counter = itertools.count()
        self._month_start = self._month_end = 0.0

    def next(self) -> str:
        now = time.time()
        if not self._month_start <= now < self._month_end:
            self._roll_month(now)
        since = int((now - self._month_start) * 1000) & 0xFFFFFFFF
        return f"{self._prefix}{since:08X}{next(self._counter) & 0xFFFF:04X}"

    def _roll_month(self, now: float) -> None:
        t = time.localtime(now)
        self._month_start = time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        self._month_end = time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1))


def message_properties(msg: Message, uniq_key: str) -> str:
    """The properties string of a send: user properties plus TAGS, KEYS, WAIT=true and UNIQ_KEY."""
    if not msg.properties and not msg.tags and not msg.keys:  # the common case, without a dict
        return f"{PROPERTY_WAIT}{NAME_VALUE_SEPARATOR}true{PROPERTY_SEPARATOR}" \
               f"{PROPERTY_UNIQ_KEY}{NAME_VALUE_SEPARATOR}{uniq_key}"
    return encode_properties(_props_dict(msg, uniq_key))


def uniq_key_of(msg: Message, ids: UniqIds) -> str:
    """A caller-set UNIQ_KEY is kept (as MessageClientIDSetter does); otherwise a new one."""
    return msg.properties.get(PROPERTY_UNIQ_KEY) or ids.next()


@dataclass(slots=True)
class SendCommand(RemotingCommand):
    """A send whose extFields are pre-rendered JSON: the send hot path skips building a dict and running
    json.dumps over it for every message (the header is most of the client's per-message CPU otherwise).
    ``ext_fields`` stays empty; ``ext_json`` is the wire truth and decodes to the same map."""

    ext_json: str = "{}"

    def encode_frame(self) -> bytes:
        header = (f'{{"code":{self.code},"extFields":{self.ext_json},"flag":{self.flag},"language":'
                  f'"{self.language}","opaque":{self.opaque},"serializeTypeCurrentRPC":"JSON",'
                  f'"version":{self.version}}}').encode()
        length = 4 + len(header) + len(self.body)
        if length + 4 > MAX_FRAME_LENGTH:  # the peer would close the connection, failing every call on it
            raise FrameError(f"frame of {length + 4} bytes exceeds the {MAX_FRAME_LENGTH}-byte limit")
        return _FRAME_HEAD.pack(length, len(header)) + header + self.body


_FRAME_HEAD = struct.Struct(">ii")
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # C; quotes and escapes


def send_request(group: str, msg: Message, queue: MessageQueue, properties: str) -> SendCommand:
    """SEND_MESSAGE_V2 with the short a..n header names."""
    retry = ""
    if msg.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
        # The broker honours these for retry topics; the Java client moves them out of the properties.
        retry = ',"l":%s' % _json_str(msg.properties.get(PROPERTY_MAX_RECONSUME_TIMES, "16"))
        reconsume = msg.properties.get(PROPERTY_RECONSUME_TIME, "0")
    else:
        reconsume = "0"
    return SendCommand(code=RequestCode.SEND_MESSAGE_V2, body=msg.body,
                       ext_json=_send_ext(group, queue, msg.flag, properties, False, reconsume, retry))


def batch_request(group: str, msgs: list[Message], queue: MessageQueue, uniq_keys: list[str]) -> SendCommand:
    """SEND_BATCH_MESSAGE: each inner message carries its own UNIQ_KEY; the outer properties only WAIT."""
    items = [BatchItem(m.body, _props_dict(m, key), m.flag) for m, key in zip(msgs, uniq_keys)]
    ext = _send_ext(group, queue, 0, f"{PROPERTY_WAIT}{NAME_VALUE_SEPARATOR}true", True, "0", "")
    return SendCommand(code=RequestCode.SEND_BATCH_MESSAGE, body=encode_batch_body(items), ext_json=ext)


def _props_dict(msg: Message, uniq_key: str) -> dict[str, str]:
    props = dict(msg.properties)
    if msg.tags:
        props[PROPERTY_TAGS] = msg.tags
    if msg.keys:
        props[PROPERTY_KEYS] = " ".join(msg.keys)
    props.setdefault(PROPERTY_WAIT, "true")
    props[PROPERTY_UNIQ_KEY] = uniq_key
    return props


def _send_ext(group: str, queue: MessageQueue, flag: int, properties: str, batch: bool, reconsume: str,
              extra: str) -> str:
    # 4.9.8 always sends unitMode (k) and batch (m): they are primitive booleans there.
    return (f'{{"a":{_json_str(group)},"b":{_json_str(queue.topic)},"c":"{AUTO_CREATE_TOPIC_KEY}",'
            f'"d":"{DEFAULT_TOPIC_QUEUE_NUMS}","e":"{queue.queue_id}","f":"0","g":"{int(time.time() * 1000)}",'
            f'"h":"{flag}","i":{_json_str(properties)},"j":{_json_str(reconsume)},"k":"false"{extra},'
            f'"m":"{"true" if batch else "false"}","n":{_json_str(queue.broker_name)}}}')


def parse_send_response(resp: RemotingCommand, queue: MessageQueue, msg_id: str, addr: str) -> SendResult:
    status = SEND_STATUS.get(resp.code)  # type: ignore[call-overload]
    if status is None:
        raise ResponseError(resp.code, resp.remark, addr)
    ext = resp.ext_fields
    written = MessageQueue(queue.topic, queue.broker_name, int(ext.get("queueId", queue.queue_id)))
    return SendResult(status, msg_id, ext.get("msgId", ""), written, int(ext.get("queueOffset", -1)), addr)


# ---------------------------------------------------------------- pull

def pull_request(group: str, queue: MessageQueue, offset: int, max_nums: int, subscription: str,
                 suspend_ms: int, commit_offset: int | None, sub_version: int) -> RemotingCommand:
    """PULL_MESSAGE with the subscription in the request (bit 2), so no heartbeat is needed first."""
    sys_flag = PULL_FLAG_SUBSCRIPTION | (PULL_FLAG_SUSPEND if suspend_ms > 0 else 0)
    if commit_offset is not None:
        sys_flag |= PULL_FLAG_COMMIT_OFFSET
    ext = {"consumerGroup": group, "topic": queue.topic, "queueId": str(queue.queue_id),
           "queueOffset": str(offset), "maxMsgNums": str(max_nums), "sysFlag": str(sys_flag),
           "commitOffset": str(commit_offset if commit_offset is not None else 0),
           "suspendTimeoutMillis": str(suspend_ms), "subscription": subscription,
           "subVersion": str(sub_version), "expressionType": "TAG", "bname": queue.broker_name}
    return RemotingCommand(code=RequestCode.PULL_MESSAGE, ext_fields=ext)


def parse_pull_response(resp: RemotingCommand, subscription: str, addr: str) -> PullResult:
    status = PULL_STATUS.get(resp.code)  # type: ignore[call-overload]
    if status is None:
        raise ResponseError(resp.code, resp.remark, addr)
    ext = resp.ext_fields
    min_offset, max_offset = int(ext.get("minOffset", 0)), int(ext.get("maxOffset", 0))
    messages: list[MessageExt] = []
    if status == "FOUND" and resp.body:
        messages = decode_stored_messages(resp.body)
        tags = parse_tags(subscription)
        if tags:  # the broker filters by tag hash only; like the Java client, check the real tag again
            messages = [m for m in messages if m.tags in tags]
        for m in messages:
            m.properties[PROPERTY_MIN_OFFSET] = str(min_offset)
            m.properties[PROPERTY_MAX_OFFSET] = str(max_offset)
    return PullResult(status, int(ext.get("nextBeginOffset", 0)), min_offset, max_offset,
                      int(ext.get("suggestWhichBrokerId", 0)), messages)


def parse_tags(subscription: str) -> frozenset[str]:
    """Tags of a TAG expression; empty for ``*`` (everything)."""
    if not subscription or subscription.strip() == "*":
        return frozenset()
    return frozenset(t.strip() for t in subscription.split("||") if t.strip())


# ---------------------------------------------------------------- heartbeat and admin bodies

@dataclass(frozen=True)
class ConsumerRegistration:
    """A consumer group this client heartbeats: topic -> tag expression."""

    group: str
    subscriptions: dict[str, str]
    consume_from_where: str = "CONSUME_FROM_LAST_OFFSET"
    sub_version: int = field(default_factory=lambda: int(time.time() * 1000))


def heartbeat_body(client_id: str, producer_group: str, consumers: Iterable[ConsumerRegistration]) -> bytes:
    return jsonbody.dumps({
        "clientID": client_id,
        "producerDataSet": [{"groupName": producer_group}, {"groupName": CLIENT_INNER_PRODUCER}],
        "consumerDataSet": [_consumer_data(c) for c in consumers],
    })


def _consumer_data(reg: ConsumerRegistration) -> dict[str, object]:
    subs = []
    for topic, expression in sorted(reg.subscriptions.items()):
        tags = sorted(parse_tags(expression))
        subs.append({"classFilterMode": False, "topic": topic, "subString": expression or "*",
                     "tagsSet": tags, "codeSet": [java_string_hash(t) for t in tags],
                     "subVersion": reg.sub_version, "expressionType": "TAG"})
    return {"groupName": reg.group, "consumeType": "CONSUME_ACTIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": reg.consume_from_where, "subscriptionDataSet": subs, "unitMode": False}


def request(code: int, **fields: object) -> RemotingCommand:
    """A request whose header fields are stringified as extFields (None values left out)."""
    return RemotingCommand(code=code, ext_fields=stringify(fields))


def check(resp: RemotingCommand, addr: str, *ok: int) -> RemotingCommand:
    """The response itself when its code is SUCCESS (or one of ``ok``); ResponseError otherwise."""
    if resp.code != ResponseCode.SUCCESS and resp.code not in ok:
        raise ResponseError(resp.code, resp.remark, addr)
    return resp


def consumer_id_list(body: bytes) -> list[str]:
    return [str(c) for c in (jsonbody.loads(body).get("consumerIdList") or [])] if body else []


def kv_table(body: bytes) -> dict[str, str]:
    return {str(k): str(v) for k, v in (jsonbody.loads(body).get("table") or {}).items()} if body else {}
