"""Fast paths over stored-message records (layout E.1) for the broker's hot loops.

``harness.remoting.message`` has the general codec (MessageExt in, MessageExt out). The store writes and
dispatches tens of thousands of records a second, so it builds them with one precompiled struct and reads
back only the few fields it needs (queue, offsets, tags, store time) without decoding the whole record.
"""
from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass

from harness.remoting.message import (
    MAGIC_V1, MAGIC_V2, MAX_PROPERTIES_LENGTH, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, SYSFLAG_BORNHOST_V6,
    SYSFLAG_STOREHOST_V6, java_string_hash,
)

# total, magic, body crc, queue id, flag, queue offset, physical offset, sys flag, born ts
_HEAD = struct.Struct(">iIiiiqqiq")
_TAIL = struct.Struct(">iqi")  # after the store host: reconsume times, prepared tx offset, body length
_STORE_TS = struct.Struct(">q")
_QUEUE_ID_AT = 12
_QUEUE_OFFSET_AT = 20
_SYSFLAG_AT = 36
_BORN_HOST_AT = 48
#: Enough bytes to reach STORETIMESTAMP whatever the host sizes (48 + 20 + 8).
STORE_TS_PROBE = 76
_TAGS_PREFIX = "TAGS" + NAME_VALUE_SEPARATOR
_tags_codes: dict[str, int] = {}


@dataclass(slots=True)
class NewMessage:
    """What the broker hands the store for one message; ``properties`` is the final encoded string."""

    body: bytes
    properties: bytes
    flag: int = 0
    sys_flag: int = 0
    born_timestamp: int = 0
    reconsume_times: int = 0
    tags_code: int = 0
    prepared_offset: int = 0


def pack_host(ip: str, port: int) -> bytes:
    """IPv4: 4 + 4 bytes, IPv6: 16 + 4 bytes, as in BORNHOST and STOREHOST."""
    return ipaddress.ip_address(ip).packed + struct.pack(">i", port)


def topic_field(topic: str) -> tuple[bytes, int]:
    """The TOPICLEN + TOPIC bytes and the magic code that goes with them (V2 for topics over 127 bytes)."""
    raw = topic.encode()
    if len(raw) > 127:
        return struct.pack(">h", len(raw)) + raw, MAGIC_V2
    return bytes((len(raw),)) + raw, MAGIC_V1


def encode_record(msg: NewMessage, topic_part: bytes, magic: int, queue_id: int, queue_offset: int,
                  physical_offset: int, born_host: bytes, store_ts: int, store_host: bytes) -> bytes:
    props = msg.properties
    if len(props) > MAX_PROPERTIES_LENGTH:
        raise ValueError(f"properties of {len(props)} bytes exceed {MAX_PROPERTIES_LENGTH}")
    sys_flag = msg.sys_flag & ~(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6)
    if len(born_host) != 8:
        sys_flag |= SYSFLAG_BORNHOST_V6
    if len(store_host) != 8:
        sys_flag |= SYSFLAG_STOREHOST_V6
    body = msg.body
    total = (_HEAD.size + len(born_host) + 8 + len(store_host) + 16 + len(body) + len(topic_part)
             + 2 + len(props))
    return b"".join((
        _HEAD.pack(total, magic, zlib.crc32(body) & 0x7FFFFFFF, queue_id, msg.flag, queue_offset,
                   physical_offset, sys_flag, msg.born_timestamp),
        born_host, _STORE_TS.pack(store_ts), store_host,
        _TAIL.pack(msg.reconsume_times, msg.prepared_offset, len(body)),
        body, topic_part, struct.pack(">h", len(props)), props))


def tags_code_of(properties: str) -> int:
    """Java String.hashCode() of the TAGS property (0 when there is none), cached per tag."""
    at = properties.find(_TAGS_PREFIX)
    while at > 0 and properties[at - 1] != PROPERTY_SEPARATOR:
        at = properties.find(_TAGS_PREFIX, at + 1)
    if at < 0:
        return 0
    end = properties.find(PROPERTY_SEPARATOR, at)
    tags = properties[at + len(_TAGS_PREFIX):] if end < 0 else properties[at + len(_TAGS_PREFIX):end]
    code = _tags_codes.get(tags)
    if code is None:
        code = java_string_hash(tags)
        if len(_tags_codes) < 100_000:
            _tags_codes[tags] = code
    return code


@dataclass(frozen=True, slots=True)
class DispatchInfo:
    """What a consume queue needs of one record."""

    topic: str
    queue_id: int
    queue_offset: int
    position: int
    size: int
    tags_code: int


def parse_dispatch(record: bytes, position: int) -> DispatchInfo:
    """Read the dispatch fields of a whole record (e.g. one a follower received from its leader)."""
    total, magic = struct.unpack_from(">iI", record, 0)
    if magic not in (MAGIC_V1, MAGIC_V2) or total != len(record):
        raise ValueError(f"record at position {position} is not a stored message (magic {magic:#x})")
    (queue_id,) = struct.unpack_from(">i", record, _QUEUE_ID_AT)
    (queue_offset,) = struct.unpack_from(">q", record, _QUEUE_OFFSET_AT)
    (sys_flag,) = struct.unpack_from(">i", record, _SYSFLAG_AT)
    pos = _BORN_HOST_AT + (20 if sys_flag & SYSFLAG_BORNHOST_V6 else 8) + 8
    pos += (20 if sys_flag & SYSFLAG_STOREHOST_V6 else 8) + 12
    (body_len,) = struct.unpack_from(">i", record, pos)
    pos += 4 + body_len
    if magic == MAGIC_V2:
        (topic_len,) = struct.unpack_from(">h", record, pos)
        pos += 2
    else:
        topic_len = record[pos]
        pos += 1
    topic = record[pos:pos + topic_len].decode()
    pos += topic_len
    (props_len,) = struct.unpack_from(">h", record, pos)
    props = record[pos + 2:pos + 2 + props_len].decode()
    return DispatchInfo(topic, queue_id, queue_offset, position, total, tags_code_of(props))


def store_timestamp_of(head: bytes) -> int:
    """STORETIMESTAMP from the first STORE_TS_PROBE bytes of a record."""
    (sys_flag,) = struct.unpack_from(">i", head, _SYSFLAG_AT)
    at = _BORN_HOST_AT + (20 if sys_flag & SYSFLAG_BORNHOST_V6 else 8)
    return int(_STORE_TS.unpack_from(head, at)[0])


def split_batch_body(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """(flag, body, raw properties) of each message of a SEND_BATCH_MESSAGE body (layout E.6).

    Kept separate from ``message.decode_batch_body`` because the store needs the properties bytes as sent.
    """
    out = []
    pos, end = 0, len(body)
    while pos < end:
        if pos + 22 > end:
            raise ValueError(f"batch body: message at offset {pos} is cut short ({end - pos} bytes left)")
        total, _magic, _crc, flag, body_len = _BATCH_HEAD.unpack_from(body, pos)
        if total < 22 or pos + total > end or body_len < 0 or 22 + body_len > total:
            raise ValueError(f"batch body: message at offset {pos} claims {total} bytes with a "
                             f"{body_len}-byte body ({end - pos} bytes left)")
        (props_len,) = struct.unpack_from(">h", body, pos + 20 + body_len)
        if props_len < 0 or 22 + body_len + props_len != total:
            raise ValueError(f"batch body: message at offset {pos} has a properties length {props_len} "
                             f"that does not match its size {total}")
        start = pos + 20
        out.append((flag, body[start:start + body_len], body[start + body_len + 2:pos + total]))
        pos += total
    return out


_BATCH_HEAD = struct.Struct(">iiiii")


def join_properties(inner: bytes, outer: bytes) -> bytes:
    """A batch message's stored properties: its own, then the batch's (as RocketMQ's batch encoder does)."""
    if not inner or not outer:
        return inner or outer
    if inner.endswith(PROPERTY_SEPARATOR.encode()):
        return inner + outer
    return inner + PROPERTY_SEPARATOR.encode() + outer
