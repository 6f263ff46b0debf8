"""Message encodings: properties, stored records (field positions from the protocol facts), batches, ids."""
from __future__ import annotations

import struct
import zlib

import pytest

from harness.remoting import jsonbody
from harness.remoting.message import (MAGIC_V1, MAGIC_V2, SYSFLAG_BORNHOST_V6, SYSFLAG_COMPRESSED, BatchItem,
                                      HostAddress, MessageDecodeError, MessageExt, UniqKeyFactory, decode_batch_body,
                                      decode_properties, decode_stored_message, decode_stored_messages,
                                      encode_batch_body, encode_properties, encode_stored_message, java_string_hash,
                                      offset_msg_id, parse_offset_msg_id)


def test_properties_from_a_real_capture() -> None:
    # An old client's SEND_MESSAGE_V2 'i' field, trailing separator included.
    assert decode_properties("TAGS\x01TAG\x02WAIT\x01true\x02KEYS\x01ffff\x02") == {
        "TAGS": "TAG", "WAIT": "true", "KEYS": "ffff"}
    assert decode_properties("a\x02\x01x\x02k\x01\x02ok\x01v") == {"ok": "v"}  # short / empty pieces ignored
    props = {"TAGS": "A", "UNIQ_KEY": "ABC"}
    assert decode_properties(encode_properties(props)) == props


def _message(**kw: object) -> MessageExt:
    base = dict(topic="TopicTest", body=b"payload", properties={"TAGS": "TagA", "UNIQ_KEY": "U1"}, queue_id=3,
                queue_offset=17, commit_log_offset=123456, born_timestamp=1_700_000_000_000,
                born_host=HostAddress("10.0.0.5", 50000), store_timestamp=1_700_000_000_005,
                store_host=HostAddress("127.0.0.1", 10911), reconsume_times=2, flag=9)
    base.update(kw)
    return MessageExt(**base)  # type: ignore[arg-type]


def test_stored_record_fixed_positions() -> None:
    raw = encode_stored_message(_message())
    total, magic = struct.unpack_from(">iI", raw, 0)
    assert total == len(raw) and magic == MAGIC_V1
    assert struct.unpack_from(">q", raw, 20)[0] == 17        # queue offset at 20
    assert struct.unpack_from(">q", raw, 28)[0] == 123456    # physical offset at 28
    assert struct.unpack_from(">i", raw, 36)[0] == 0         # sysflag at 36
    assert struct.unpack_from(">i", raw, 8)[0] == zlib.crc32(b"payload") & 0x7FFFFFFF


def test_stored_record_round_trip_and_concatenation() -> None:
    msgs = [_message(queue_offset=i, body=bytes([i]) * i) for i in range(1, 6)]
    decoded = decode_stored_messages(b"".join(encode_stored_message(m) for m in msgs))
    assert [(m.queue_offset, m.body) for m in decoded] == [(m.queue_offset, m.body) for m in msgs]
    first = decoded[0]
    assert (first.topic, first.tags, first.born_host, first.reconsume_times, first.flag) == (
        "TopicTest", "TagA", HostAddress("10.0.0.5", 50000), 2, 9)
    assert first.msg_id == "U1" and first.offset_msg_id == offset_msg_id(HostAddress("127.0.0.1", 10911), 123456)


def test_ipv6_hosts_set_the_sysflag_bits() -> None:
    raw = encode_stored_message(_message(born_host=HostAddress("::1", 1234)))
    assert struct.unpack_from(">i", raw, 36)[0] & SYSFLAG_BORNHOST_V6
    assert decode_stored_message(raw).born_host == HostAddress("::1", 1234)


def test_long_topic_uses_v2_magic_and_compressed_bodies_are_inflated() -> None:
    raw = encode_stored_message(_message(topic="T" * 200))
    assert struct.unpack_from(">I", raw, 4)[0] == MAGIC_V2
    assert decode_stored_message(raw).topic == "T" * 200
    packed = encode_stored_message(_message(body=zlib.compress(b"x" * 5000), sys_flag=SYSFLAG_COMPRESSED))
    assert decode_stored_message(packed).body == b"x" * 5000


def test_decoding_stops_at_the_first_bad_record() -> None:
    good = encode_stored_message(_message())
    assert len(decode_stored_messages(good + good[:30])) == 1
    assert len(decode_stored_messages(good + b"\0" * 40 + good)) == 1
    with pytest.raises(MessageDecodeError):
        decode_stored_message(good[:-1])


def test_batch_body_round_trip() -> None:
    items = [BatchItem(b"a" * i, {"UNIQ_KEY": f"K{i}"}, flag=i) for i in range(4)]
    assert decode_batch_body(encode_batch_body(items)) == items
    with pytest.raises(MessageDecodeError):
        decode_batch_body(encode_batch_body(items)[:-3])


def test_offset_msg_id_layout() -> None:
    # ip(4) + port(int32) + offset(int64), upper-case hex: 32 chars for IPv4.
    mid = offset_msg_id(HostAddress("127.0.0.1", 10911), 255)
    assert mid == "7F0000010000" + "2A9F" + "00000000000000FF"
    assert parse_offset_msg_id(mid) == (HostAddress("127.0.0.1", 10911), 255)
    assert len(offset_msg_id(HostAddress("::1", 1), 1)) == 56


def test_uniq_keys_are_32_hex_and_distinct() -> None:
    factory = UniqKeyFactory()
    keys = {factory.next() for _ in range(1000)}
    assert len(keys) == 1000 and all(len(k) == 32 and k == k.upper() for k in keys)


def test_java_string_hash_matches_java() -> None:
    assert java_string_hash("TagA") == 2598919            # 84*31^3 + 97*31^2 + 103*31 + 65
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -2147483648  # a well-known Integer.MIN_VALUE hash


def test_fastjson_bare_keys_are_parsed_but_strings_left_alone() -> None:
    text = '{"brokerAddrs":{0:"172.168.0.104:10911",1:"x"},"note":"{2:not a key}"}'
    assert jsonbody.loads(text) == {"brokerAddrs": {"0": "172.168.0.104:10911", "1": "x"}, "note": "{2:not a key}"}
    assert jsonbody.loads(b'{"a":1}') == {"a": 1}
