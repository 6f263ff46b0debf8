"""Message encodings: the properties string, the stored-message record (pull bodies and our commit log),
the SEND_BATCH_MESSAGE body, offsetMsgId and UNIQ_KEY ids."""
from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

NAME_VALUE_SEPARATOR = "\x01"
PROPERTY_SEPARATOR = "\x02"
MAGIC_V1 = 0xDAA320A7
MAGIC_V2 = 0xDAA320AB
MAX_PROPERTIES_LENGTH = 32767

SYSFLAG_COMPRESSED = 0x1
SYSFLAG_MULTI_TAGS = 0x2
SYSFLAG_BORNHOST_V6 = 0x10
SYSFLAG_STOREHOST_V6 = 0x20
SYSFLAG_COMPRESSION_MASK = 0x700

PROPERTY_KEYS = "KEYS"
PROPERTY_TAGS = "TAGS"
PROPERTY_WAIT = "WAIT"
PROPERTY_UNIQ_KEY = "UNIQ_KEY"
PROPERTY_CLUSTER = "CLUSTER"
PROPERTY_RETRY_TOPIC = "RETRY_TOPIC"
PROPERTY_ORIGIN_MESSAGE_ID = "ORIGIN_MESSAGE_ID"
PROPERTY_RECONSUME_TIME = "RECONSUME_TIME"
PROPERTY_MAX_RECONSUME_TIMES = "MAX_RECONSUME_TIMES"
PROPERTY_DELAY = "DELAY"
PROPERTY_MIN_OFFSET = "MIN_OFFSET"
PROPERTY_MAX_OFFSET = "MAX_OFFSET"


class MessageDecodeError(ValueError):
    """A record or body that does not follow the stored-message or batch layout."""


def encode_properties(props: dict[str, str]) -> str:
    return PROPERTY_SEPARATOR.join(f"{k}{NAME_VALUE_SEPARATOR}{v}" for k, v in props.items())


def decode_properties(text: str) -> dict[str, str]:
    """Split on char(2), then on the first char(1); pieces too short or with empty key/value are ignored."""
    props: dict[str, str] = {}
    for piece in text.split(PROPERTY_SEPARATOR):
        if len(piece) < 3:
            continue
        key, sep, value = piece.partition(NAME_VALUE_SEPARATOR)
        if sep and key and value:
            props[key] = value
    return props


@dataclass(slots=True)
class HostAddress:
    ip: str
    port: int

    def pack(self) -> bytes:
        return ipaddress.ip_address(self.ip).packed + struct.pack(">i", self.port)

    @property
    def is_v6(self) -> bool:
        return ipaddress.ip_address(self.ip).version == 6

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    def parse(cls, addr: str) -> HostAddress:
        host, _, port = addr.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = socket.gethostbyname(host) if host != "localhost" else "127.0.0.1"
        return cls(host, int(port))


@dataclass(slots=True)
class MessageExt:
    """A stored message as a pull response carries it (MessageExt in the Java client)."""

    topic: str
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)
    queue_id: int = 0
    queue_offset: int = 0
    commit_log_offset: int = 0
    sys_flag: int = 0
    flag: int = 0
    born_timestamp: int = 0
    born_host: HostAddress = field(default_factory=lambda: HostAddress("127.0.0.1", 0))
    store_timestamp: int = 0
    store_host: HostAddress = field(default_factory=lambda: HostAddress("127.0.0.1", 0))
    reconsume_times: int = 0
    prepared_transaction_offset: int = 0
    body_crc: int = 0
    store_size: int = 0

    @property
    def tags(self) -> str | None:
        return self.properties.get(PROPERTY_TAGS)

    @property
    def keys(self) -> list[str]:
        return self.properties.get(PROPERTY_KEYS, "").split()

    @property
    def msg_id(self) -> str:
        """The client message id (UNIQ_KEY), falling back to the offset id as the Java client does."""
        return self.properties.get(PROPERTY_UNIQ_KEY) or self.offset_msg_id

    @property
    def offset_msg_id(self) -> str:
        return offset_msg_id(self.store_host, self.commit_log_offset)


def body_crc32(body: bytes) -> int:
    return zlib.crc32(body) & 0x7FFFFFFF


def encode_stored_message(msg: MessageExt) -> bytes:
    """One record in the E.1 layout; CRC, sizes and host-address flags are computed here."""
    topic = msg.topic.encode()
    props = encode_properties(msg.properties).encode()
    if len(props) > MAX_PROPERTIES_LENGTH:
        raise MessageDecodeError(f"properties of {len(props)} bytes exceed {MAX_PROPERTIES_LENGTH}")
    sys_flag = msg.sys_flag & ~(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6)
    sys_flag |= SYSFLAG_BORNHOST_V6 if msg.born_host.is_v6 else 0
    sys_flag |= SYSFLAG_STOREHOST_V6 if msg.store_host.is_v6 else 0
    v2 = len(topic) > 127
    topic_part = struct.pack(">h", len(topic)) + topic if v2 else struct.pack(">B", len(topic)) + topic
    head = struct.pack(">iiqqiq", msg.queue_id, msg.flag, msg.queue_offset, msg.commit_log_offset,
                       sys_flag, msg.born_timestamp)
    middle = (msg.born_host.pack() + struct.pack(">q", msg.store_timestamp) + msg.store_host.pack()
              + struct.pack(">iqi", msg.reconsume_times, msg.prepared_transaction_offset, len(msg.body)))
    rest = msg.body + topic_part + struct.pack(">h", len(props)) + props
    total = 12 + len(head) + len(middle) + len(rest)
    magic = MAGIC_V2 if v2 else MAGIC_V1
    return struct.pack(">iIi", total, magic, body_crc32(msg.body)) + head + middle + rest


def decode_stored_messages(data: bytes, decompress: bool = True) -> list[MessageExt]:
    """Decode consecutive records; like the Java client, stop at the first record that fails."""
    out: list[MessageExt] = []
    view = memoryview(data)
    pos = 0
    while pos + 4 <= len(view):
        try:
            msg = decode_stored_message(view[pos:], decompress)
        except MessageDecodeError:
            break
        out.append(msg)
        pos += msg.store_size
    return out


def decode_stored_message(buf: bytes | memoryview, decompress: bool = True) -> MessageExt:
    """Decode the record at the start of ``buf``; raises MessageDecodeError if it is not whole or valid."""
    try:
        return _decode_record(memoryview(buf), decompress)
    except (struct.error, UnicodeDecodeError, ValueError, zlib.error) as exc:
        if isinstance(exc, MessageDecodeError):
            raise
        raise MessageDecodeError(f"stored message record is corrupt: {exc}") from None


def _decode_record(view: memoryview, decompress: bool) -> MessageExt:
    total, magic, crc = struct.unpack_from(">iIi", view, 0)
    if magic not in (MAGIC_V1, MAGIC_V2):
        raise MessageDecodeError(f"bad magic code {magic:#x}")
    if total < 12 or total > len(view):
        raise MessageDecodeError(f"record size {total} does not fit the {len(view)} bytes left")
    rec = view[:total]
    queue_id, flag, queue_offset, phys, sys_flag, born_ts = struct.unpack_from(">iiqqiq", rec, 12)
    pos = 12 + struct.calcsize(">iiqqiq")
    born_host, pos = _read_host(rec, pos, bool(sys_flag & SYSFLAG_BORNHOST_V6))
    (store_ts,) = struct.unpack_from(">q", rec, pos)
    store_host, pos = _read_host(rec, pos + 8, bool(sys_flag & SYSFLAG_STOREHOST_V6))
    reconsume, prepared, body_len = struct.unpack_from(">iqi", rec, pos)
    pos += 16
    body = _take(rec, pos, body_len)
    pos += body_len
    if magic == MAGIC_V2:
        (topic_len,) = struct.unpack_from(">h", rec, pos)
        pos += 2
    else:
        (topic_len,) = struct.unpack_from(">B", rec, pos)
        pos += 1
    topic = _take(rec, pos, topic_len).decode()
    pos += topic_len
    (props_len,) = struct.unpack_from(">h", rec, pos)
    props = decode_properties(_take(rec, pos + 2, props_len).decode())
    if decompress and sys_flag & SYSFLAG_COMPRESSED:
        body = zlib.decompress(body)  # type 0 and 3 are zlib; LZ4/ZSTD are not supported here
    return MessageExt(topic=topic, body=body, properties=props, queue_id=queue_id, queue_offset=queue_offset,
                      commit_log_offset=phys, sys_flag=sys_flag, flag=flag, born_timestamp=born_ts,
                      born_host=born_host, store_timestamp=store_ts, store_host=store_host,
                      reconsume_times=reconsume, prepared_transaction_offset=prepared, body_crc=crc,
                      store_size=total)


def _take(view: memoryview, pos: int, length: int) -> bytes:
    if length < 0 or pos + length > len(view):
        raise MessageDecodeError(f"field of {length} bytes at offset {pos} runs past the record")
    return bytes(view[pos:pos + length])


def _read_host(view: memoryview, pos: int, v6: bool) -> tuple[HostAddress, int]:
    size = 16 if v6 else 4
    ip = str(ipaddress.ip_address(_take(view, pos, size)))
    (port,) = struct.unpack_from(">i", view, pos + size)
    return HostAddress(ip, port), pos + size + 4


# ---------------------------------------------------------------- batch body (SEND_BATCH_MESSAGE)

@dataclass(slots=True)
class BatchItem:
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)
    flag: int = 0


def encode_batch_body(items: list[BatchItem]) -> bytes:
    parts = []
    for item in items:
        props = encode_properties(item.properties).encode()
        total = 4 + 4 + 4 + 4 + 4 + len(item.body) + 2 + len(props)
        parts.append(struct.pack(">iiiii", total, 0, 0, item.flag, len(item.body)) + item.body
                     + struct.pack(">h", len(props)) + props)
    return b"".join(parts)


def decode_batch_body(data: bytes) -> list[BatchItem]:
    items: list[BatchItem] = []
    view = memoryview(data)
    pos = 0
    try:
        while pos < len(view):
            total, _magic, _crc, flag, body_len = struct.unpack_from(">iiiii", view, pos)
            if total < 22 or pos + total > len(view):
                raise MessageDecodeError(f"batch record at {pos} claims {total} bytes")
            body = _take(view, pos + 20, body_len)
            (props_len,) = struct.unpack_from(">h", view, pos + 20 + body_len)
            props = decode_properties(_take(view, pos + 22 + body_len, props_len).decode())
            items.append(BatchItem(body=body, properties=props, flag=flag))
            pos += total
    except (struct.error, UnicodeDecodeError) as exc:
        raise MessageDecodeError(f"batch body is corrupt at offset {pos}: {exc}") from None
    return items


# ---------------------------------------------------------------- ids

def offset_msg_id(store_host: HostAddress, commit_log_offset: int) -> str:
    return (store_host.pack() + struct.pack(">q", commit_log_offset)).hex().upper()


def parse_offset_msg_id(msg_id: str) -> tuple[HostAddress, int]:
    raw = bytes.fromhex(msg_id)
    ip_len = 16 if len(raw) == 28 else 4
    ip = str(ipaddress.ip_address(raw[:ip_len]))
    port, offset = struct.unpack_from(">iq", raw, ip_len)
    return HostAddress(ip, port), offset


class UniqKeyFactory:
    """UNIQ_KEY ids in the MessageClientIDSetter layout: ip(4) pid(2) salt(4) ms-since-month(4) counter(2)."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        self._prefix = (ipaddress.ip_address(ip).packed[-4:] + struct.pack(">H", os.getpid() & 0xFFFF)
                        + os.urandom(4))
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        now = time.time()
        t = time.gmtime(now)
        month_start = time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))
        since = int((now - month_start) * 1000) & 0xFFFFFFFF
        return (self._prefix + struct.pack(">IH", since, n & 0xFFFF)).hex().upper()


def java_string_hash(text: str) -> int:
    """Java String.hashCode(), used as the tags code in consume-queue entries and SubscriptionData.codeSet."""
    h = 0
    for unit in _utf16_units(text):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-be")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
