"""Peer frames of the Raft group: round trips through the real codec, and every malformed case refused."""
from __future__ import annotations

import struct

import pytest

from cluster.local import dledger_wire as wire
from harness.remoting.codes import ResponseCode
from harness.remoting.frame import RemotingCommand, decode_command, encode_command


def through_codec(cmd: RemotingCommand) -> RemotingCommand:
    return decode_command(encode_command(cmd)[4:])


def test_entry_batch_round_trip_keeps_binary_payloads() -> None:
    payloads = [b"", b"\x00\xff" * 300, bytes(range(256)), b"x"]
    terms, decoded = wire.decode_entries(wire.encode_entries([1, 2, 2, 3], payloads))
    assert terms == (1, 2, 2, 3) and decoded == payloads
    assert wire.decode_entries(b"") == ((), [])


@pytest.mark.parametrize("body", [
    b"\x00\x00",                                         # shorter than the count
    struct.pack(">I", 0) + b"abc",                       # zero entries but a body
    struct.pack(">I", 10**9),                            # count that cannot fit
    struct.pack(">Iq I", 1, 1, 10) + b"short",           # lengths exceed the body
    struct.pack(">Iq I", 1, 1, 1) + b"ab",               # bytes left over
    struct.pack(">Iq I", 1, 0, 1) + b"a",                # term 0
])
def test_malformed_entry_batches_raise_wire_error(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_entries(body)


def test_append_request_and_response_round_trip() -> None:
    req = wire.AppendRequest(term=4, leader_id="n1", prev_index=9, prev_term=3, commit=8, terms=(3, 4),
                             payloads=[b"a", b"bc"])
    cmd = through_codec(wire.append_request(req))
    assert cmd.code == wire.APPEND
    assert wire.parse_append_request(cmd) == req
    resp = through_codec(wire.append_response(cmd, wire.AppendResponse(term=4, success=False, index=7)))
    assert resp.is_response and resp.opaque == cmd.opaque
    assert wire.parse_append_response(resp) == wire.AppendResponse(4, False, 7)


def test_vote_request_and_response_round_trip() -> None:
    req = wire.VoteRequest(term=7, candidate_id="n2", last_index=100, last_term=6)
    cmd = through_codec(wire.vote_request(wire.PRE_VOTE, req))
    assert cmd.code == wire.PRE_VOTE and wire.parse_vote_request(cmd) == req
    resp = through_codec(wire.vote_response(cmd, wire.VoteResponse(term=7, granted=True)))
    assert wire.parse_vote_response(resp) == wire.VoteResponse(7, True)


@pytest.mark.parametrize("ext", [
    {},
    {"term": "x", "leaderId": "n1", "prevIndex": "1", "prevTerm": "1", "commit": "0"},
    {"term": "0", "leaderId": "n1", "prevIndex": "1", "prevTerm": "1", "commit": "0"},   # term below 1
    {"term": "2", "leaderId": "", "prevIndex": "1", "prevTerm": "1", "commit": "0"},
    {"term": "2", "leaderId": "n1", "prevIndex": "-1", "prevTerm": "1", "commit": "0"},
    {"term": "9" * 30, "leaderId": "n1", "prevIndex": "1", "prevTerm": "1", "commit": "0"},
])
def test_malformed_append_fields_raise_wire_error(ext: dict[str, str]) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_append_request(RemotingCommand(code=wire.APPEND, ext_fields=ext))


def test_entry_terms_must_lie_between_prev_term_and_term() -> None:
    ext = {"term": "2", "leaderId": "n1", "prevIndex": "1", "prevTerm": "1", "commit": "0"}
    with pytest.raises(wire.WireError):
        wire.parse_append_request(RemotingCommand(code=wire.APPEND, ext_fields=ext,
                                                  body=wire.encode_entries([3], [b"x"])))


def test_error_answers_are_not_parsed_as_results() -> None:
    request = RemotingCommand(code=wire.VOTE)
    error = wire.error_response(request, "malformed")
    assert error.code == ResponseCode.SYSTEM_ERROR
    with pytest.raises(wire.WireError):
        wire.parse_vote_response(error)
    with pytest.raises(wire.WireError):
        wire.parse_append_response(request.make_response(ResponseCode.SUCCESS, ext_fields={"term": "1"}))
