"""Frame codec: round trips, golden frames built by hand from the protocol facts, and hostile input."""
from __future__ import annotations

import json
import random
import struct

import pytest

from harness.remoting.frame import (MAX_FRAME_LENGTH, SERIALIZE_JSON, SERIALIZE_ROCKETMQ, FrameDecoder, FrameError,
                                    RemotingCommand, decode_command, encode_command, stringify)


def test_golden_json_response_from_a_java_server() -> None:
    # A response observed from a 4.9.5 server: {code 0, flag 1, language JAVA, opaque 0, version 403}.
    header = b'{"code":0,"flag":1,"language":"JAVA","opaque":0,"serializeTypeCurrentRPC":"JSON","version":403}'
    body = b"hello"
    frame = struct.pack(">ii", 4 + len(header) + len(body), len(header)) + header + body
    [cmd] = FrameDecoder().feed(frame)
    assert (cmd.code, cmd.flag, cmd.language, cmd.opaque, cmd.version) == (0, 1, "JAVA", 0, 403)
    assert cmd.is_response and not cmd.is_oneway
    assert cmd.ext_fields == {} and cmd.remark is None and cmd.body == body


def test_json_header_is_fastjson_shaped() -> None:
    cmd = RemotingCommand(code=105, opaque=7, ext_fields={"topic": "T"})
    frame = encode_command(cmd)
    length, word = struct.unpack_from(">ii", frame)
    assert length == len(frame) - 4 and word >> 24 == SERIALIZE_JSON
    header = json.loads(frame[8:8 + (word & 0xFFFFFF)])
    assert list(header) == sorted(header)  # alphabetical, nulls (remark) left out
    assert header == {"code": 105, "extFields": {"topic": "T"}, "flag": 0, "language": "PYTHON", "opaque": 7,
                      "serializeTypeCurrentRPC": "JSON", "version": 409}


def test_golden_rocketmq_binary_header() -> None:
    # code int16 | language byte | version int16 | opaque int32 | flag int32 | remark | extFields map
    ext = struct.pack(">h", 1) + b"a" + struct.pack(">i", 2) + b"xy"
    header = struct.pack(">hBhii", 310, 0, 409, 42, 0) + struct.pack(">i", 2) + b"ok" + struct.pack(">i", len(ext)) + ext
    frame = struct.pack(">ii", 4 + len(header), (SERIALIZE_ROCKETMQ << 24) | len(header)) + header
    cmd = decode_command(frame[4:])
    assert (cmd.code, cmd.language, cmd.version, cmd.opaque, cmd.remark) == (310, "JAVA", 409, 42, "ok")
    assert cmd.ext_fields == {"a": "xy"} and cmd.serialize_type == SERIALIZE_ROCKETMQ
    assert encode_command(cmd) == frame  # and we write it byte for byte the same


def test_binary_header_minimum_is_21_bytes() -> None:
    header = struct.pack(">hBhii", 0, 3, 409, 1, 1) + struct.pack(">ii", 0, 0)
    assert len(header) == 21
    cmd = decode_command(struct.pack(">i", (1 << 24) | 21) + header)
    assert cmd.language == "PYTHON" and cmd.remark is None and cmd.ext_fields == {}


@pytest.mark.parametrize("serialize", [SERIALIZE_JSON, SERIALIZE_ROCKETMQ])
def test_round_trip(serialize: int) -> None:
    cmd = RemotingCommand(code=11, opaque=2**31 - 1, flag=2, remark="ünïcode", serialize_type=serialize,
                          ext_fields=stringify({"queueOffset": 12, "commit": True, "none": None, "s": "x"}),
                          body=bytes(range(256)))
    [back] = FrameDecoder().feed(encode_command(cmd))
    assert back == cmd
    assert back.ext_fields == {"queueOffset": "12", "commit": "true", "s": "x"}


def test_decoder_handles_byte_by_byte_and_many_frames_per_read() -> None:
    frames = b"".join(encode_command(RemotingCommand(code=34, opaque=i)) for i in range(50))
    decoder = FrameDecoder()
    got = [c.opaque for b in range(len(frames)) for c in decoder.feed(frames[b:b + 1])]
    assert got == list(range(50)) and decoder.pending_bytes == 0
    assert [c.opaque for c in FrameDecoder().feed(frames)] == list(range(50))


def test_make_response_keeps_opaque_and_serialize_type() -> None:
    req = RemotingCommand(code=310, opaque=99, serialize_type=SERIALIZE_ROCKETMQ)
    resp = req.make_response(14, "not leader", {"queueId": 3})
    assert (resp.opaque, resp.flag, resp.serialize_type, resp.ext_fields) == (99, 1, SERIALIZE_ROCKETMQ, {"queueId": "3"})


@pytest.mark.parametrize("frame", [
    struct.pack(">i", MAX_FRAME_LENGTH),                       # oversize (the cap counts the length field)
    struct.pack(">i", 2) + b"\0\0",                            # shorter than the header-length word
    struct.pack(">i", -5),                                      # negative
    struct.pack(">ii", 8, 100) + b"\0" * 4,                    # header longer than the frame
    struct.pack(">ii", 6, 2) + b"{x",                          # JSON that is not JSON
    struct.pack(">ii", 6, 2) + b"[]",                          # JSON that is not an object
    struct.pack(">ii", 7, (1 << 24) | 3) + b"abc",             # truncated binary header
    struct.pack(">ii", 5, (7 << 24) | 0) + b"x",               # unknown serialize type
    struct.pack(">ii", 4 + 30, 30) + b'{"code":"x1","extFields":{}}  ',  # code not an integer
])
def test_malformed_frames_raise_frame_error(frame: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(frame)


def test_encode_refuses_frames_over_the_cap() -> None:
    with pytest.raises(FrameError):
        encode_command(RemotingCommand(code=10, body=b"\0" * MAX_FRAME_LENGTH))


def test_random_garbage_never_raises_anything_but_frame_error() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            FrameDecoder().feed(struct.pack(">i", len(data)) + data)
        except FrameError:
            pass


def test_good_frames_before_a_bad_one_are_returned_then_the_stream_is_poisoned() -> None:
    decoder = FrameDecoder()
    good = encode_command(RemotingCommand(code=34, opaque=1))
    got = decoder.feed(good + struct.pack(">i", -1))
    assert [c.opaque for c in got] == [1] and decoder.error is not None
    with pytest.raises(FrameError):
        decoder.feed(good)
