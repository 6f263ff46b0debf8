"""Peer messages of the Raft group as remoting frames: private request codes, JSON extFields for the small
fields and one binary body per batch of entries (payload bytes never go through JSON).

Entry batch body (big-endian): uint32 count | count x int64 term | count x uint32 length | payloads.
Anything that does not parse raises WireError; the handler answers with an error and the node goes on.
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from harness.remoting.codes import ResponseCode
from harness.remoting.frame import RemotingCommand

VOTE = 51001
APPEND = 51002
PRE_VOTE = 51003
_COUNT = struct.Struct(">I")
_MAX_BATCH = 1_000_000


class WireError(ValueError):
    """A peer frame with a missing, malformed or impossible field."""


@dataclass(frozen=True, slots=True)
class AppendRequest:
    term: int
    leader_id: str
    prev_index: int
    prev_term: int
    commit: int
    terms: tuple[int, ...]
    payloads: list[bytes]


@dataclass(frozen=True, slots=True)
class AppendResponse:
    term: int
    success: bool
    #: On success the last index the follower now matches; on a rejection the index to resume from.
    index: int


@dataclass(frozen=True, slots=True)
class VoteRequest:
    term: int
    candidate_id: str
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: int
    granted: bool


# ---------------------------------------------------------------- entry batches

def encode_entries(terms: list[int], payloads: list[bytes]) -> bytes:
    n = len(payloads)
    if n == 0:
        return b""
    head = struct.pack(f">I{n}q{n}I", n, *terms, *map(len, payloads))
    return b"".join((head, *payloads))


def decode_entries(body: bytes) -> tuple[tuple[int, ...], list[bytes]]:
    if not body:
        return (), []
    if len(body) < 4:
        raise WireError("entry batch shorter than its count")
    (n,) = _COUNT.unpack_from(body, 0)
    if n == 0 or n > _MAX_BATCH or 4 + 12 * n > len(body):
        raise WireError(f"entry batch count {n} does not fit a body of {len(body)} bytes")
    fields = struct.unpack_from(f">{n}q{n}I", body, 4)
    terms, lengths = fields[:n], fields[n:]
    start = 4 + 12 * n
    if start + sum(lengths) != len(body):
        raise WireError("entry lengths do not add up to the body size")
    if min(terms) < 1:
        raise WireError("entry term below 1")
    ends = list(itertools.accumulate(lengths, initial=start))
    payloads = [body[a:b] for a, b in zip(ends, ends[1:])]
    return terms, payloads


# ---------------------------------------------------------------- requests and responses

def append_request(req: AppendRequest) -> RemotingCommand:
    return RemotingCommand(code=APPEND, ext_fields={
        "term": str(req.term), "leaderId": req.leader_id, "prevIndex": str(req.prev_index),
        "prevTerm": str(req.prev_term), "commit": str(req.commit)},
        body=encode_entries(list(req.terms), req.payloads))


def parse_append_request(cmd: RemotingCommand) -> AppendRequest:
    ext = cmd.ext_fields
    terms, payloads = decode_entries(cmd.body)
    req = AppendRequest(term=_int(ext, "term", 1), leader_id=_str(ext, "leaderId"),
                        prev_index=_int(ext, "prevIndex", 0), prev_term=_int(ext, "prevTerm", 0),
                        commit=_int(ext, "commit", 0), terms=terms, payloads=payloads)
    if terms and (max(terms) > req.term or min(terms) < req.prev_term):
        raise WireError("entry terms outside prevTerm..term")
    return req


def append_response(request: RemotingCommand, resp: AppendResponse) -> RemotingCommand:
    return request.make_response(ResponseCode.SUCCESS, ext_fields={
        "term": resp.term, "success": resp.success, "index": resp.index})


def parse_append_response(cmd: RemotingCommand) -> AppendResponse:
    ext = _success_fields(cmd)
    return AppendResponse(term=_int(ext, "term", 0), success=_bool(ext, "success"),
                          index=_int(ext, "index", 0))


def vote_request(code: int, req: VoteRequest) -> RemotingCommand:
    return RemotingCommand(code=code, ext_fields={
        "term": str(req.term), "candidateId": req.candidate_id, "lastIndex": str(req.last_index),
        "lastTerm": str(req.last_term)})


def parse_vote_request(cmd: RemotingCommand) -> VoteRequest:
    ext = cmd.ext_fields
    return VoteRequest(term=_int(ext, "term", 1), candidate_id=_str(ext, "candidateId"),
                       last_index=_int(ext, "lastIndex", 0), last_term=_int(ext, "lastTerm", 0))


def vote_response(request: RemotingCommand, resp: VoteResponse) -> RemotingCommand:
    return request.make_response(ResponseCode.SUCCESS, ext_fields={"term": resp.term, "granted": resp.granted})


def parse_vote_response(cmd: RemotingCommand) -> VoteResponse:
    ext = _success_fields(cmd)
    return VoteResponse(term=_int(ext, "term", 0), granted=_bool(ext, "granted"))


def error_response(request: RemotingCommand, remark: str) -> RemotingCommand:
    return request.make_response(ResponseCode.SYSTEM_ERROR, remark)


# ---------------------------------------------------------------- field helpers

def _success_fields(cmd: RemotingCommand) -> dict[str, str]:
    if cmd.code != ResponseCode.SUCCESS:
        raise WireError(f"peer answered code {cmd.code}: {cmd.remark}")
    return cmd.ext_fields


def _int(ext: dict[str, str], key: str, minimum: int) -> int:
    raw = ext.get(key)
    if raw is None or len(raw) > 20:
        raise WireError(f"field {key!r} missing or too long")
    try:
        value = int(raw)
    except ValueError:
        raise WireError(f"field {key!r} is not an integer: {raw!r}") from None
    if value < minimum or value >= 2 ** 62:
        raise WireError(f"field {key!r} out of range: {value}")
    return value


def _str(ext: dict[str, str], key: str) -> str:
    raw = ext.get(key)
    if not raw or len(raw) > 64:
        raise WireError(f"field {key!r} missing or too long")
    return raw


def _bool(ext: dict[str, str], key: str) -> bool:
    raw = ext.get(key)
    if raw not in ("true", "false"):
        raise WireError(f"field {key!r} is not a boolean: {raw!r}")
    return raw == "true"
