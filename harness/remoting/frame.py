"""Sans-IO framing of RemotingCommand: encode, decode, and an incremental frame decoder.

Wire layout (big-endian): int32 length (not counting itself) | int32 header word (serialize type in the
high byte, header length in the low 24 bits) | header (JSON or ROCKETMQ binary) | body.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from harness.remoting.codes import LANGUAGES, VERSION_V4_9_8

SERIALIZE_JSON = 0
SERIALIZE_ROCKETMQ = 1
#: Netty's maxFrame: 16 MiB, and it includes the 4-byte length field.
MAX_FRAME_LENGTH = 16 * 1024 * 1024
FLAG_RESPONSE = 1
FLAG_ONEWAY = 2
_BINARY_FIXED = struct.Struct(">hBhii")  # code, language, version, opaque, flag


class FrameError(ValueError):
    """A frame that cannot be decoded; the connection it came on should be closed."""


@dataclass(slots=True)
class RemotingCommand:
    code: int
    opaque: int = 0
    flag: int = 0
    language: str = "PYTHON"
    version: int = VERSION_V4_9_8
    remark: str | None = None
    ext_fields: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    serialize_type: int = SERIALIZE_JSON

    @property
    def is_response(self) -> bool:
        return bool(self.flag & FLAG_RESPONSE)

    @property
    def is_oneway(self) -> bool:
        return bool(self.flag & FLAG_ONEWAY)

    def make_response(self, code: int, remark: str | None = None,
                      ext_fields: dict[str, object] | None = None, body: bytes = b"") -> RemotingCommand:
        """A response to this request: same opaque and serialize type, response flag set."""
        return RemotingCommand(code=int(code), opaque=self.opaque, flag=FLAG_RESPONSE, language="JAVA",
                               version=self.version, remark=remark, ext_fields=stringify(ext_fields or {}),
                               body=body, serialize_type=self.serialize_type)


def stringify(fields: dict[str, object]) -> dict[str, str]:
    """extFields travel as strings: ints in decimal, booleans as true/false; None values are left out."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


# ---------------------------------------------------------------- encode

def encode_command(cmd: RemotingCommand) -> bytes:
    """The whole frame, length prefix included."""
    if cmd.serialize_type == SERIALIZE_ROCKETMQ:
        header = _encode_binary_header(cmd)
    else:
        header = _encode_json_header(cmd)
    if len(header) > 0xFFFFFF:
        raise FrameError(f"header of {len(header)} bytes exceeds the 24-bit header length")
    length = 4 + len(header) + len(cmd.body)
    if length + 4 > MAX_FRAME_LENGTH:
        raise FrameError(f"frame of {length + 4} bytes exceeds the {MAX_FRAME_LENGTH}-byte limit")
    word = (cmd.serialize_type << 24) | len(header)
    return b"".join((struct.pack(">ii", length, word), header, cmd.body))


def _encode_json_header(cmd: RemotingCommand) -> bytes:
    # fastjson writes fields in alphabetical order and leaves nulls out.
    header: dict[str, object] = {"code": cmd.code, "extFields": cmd.ext_fields, "flag": cmd.flag,
                                 "language": cmd.language, "opaque": cmd.opaque}
    if cmd.remark is not None:
        header["remark"] = cmd.remark
    header["serializeTypeCurrentRPC"] = "JSON"
    header["version"] = cmd.version
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()


def _encode_binary_header(cmd: RemotingCommand) -> bytes:
    lang = LANGUAGES.index(cmd.language) if cmd.language in LANGUAGES else LANGUAGES.index("OTHER")
    parts = [_BINARY_FIXED.pack(cmd.code, lang, cmd.version, cmd.opaque, cmd.flag)]
    if cmd.remark is None:
        parts.append(struct.pack(">i", 0))
    else:
        remark = cmd.remark.encode()
        parts.append(struct.pack(">i", len(remark)) + remark)
    entries = []
    for key, value in cmd.ext_fields.items():
        k, v = key.encode(), value.encode()
        entries.append(struct.pack(">h", len(k)) + k + struct.pack(">i", len(v)) + v)
    table = b"".join(entries)
    parts.append(struct.pack(">i", len(table)) + table)
    return b"".join(parts)


# ---------------------------------------------------------------- decode

def decode_command(frame: bytes | memoryview) -> RemotingCommand:
    """Decode one frame whose 4-byte length prefix has already been stripped."""
    frame = memoryview(frame)
    if len(frame) < 4:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than its header-length word")
    (word,) = struct.unpack_from(">i", frame, 0)
    serialize_type = (word >> 24) & 0xFF
    header_len = word & 0xFFFFFF
    if header_len > len(frame) - 4:
        raise FrameError(f"header length {header_len} exceeds the frame ({len(frame) - 4} bytes left)")
    header = bytes(frame[4:4 + header_len])
    body = bytes(frame[4 + header_len:])
    if serialize_type == SERIALIZE_JSON:
        cmd = _decode_json_header(header)
    elif serialize_type == SERIALIZE_ROCKETMQ:
        cmd = _decode_binary_header(header)
    else:
        raise FrameError(f"unknown serialize type {serialize_type}")
    cmd.body = body
    cmd.serialize_type = serialize_type
    return cmd


def _decode_json_header(header: bytes) -> RemotingCommand:
    try:
        data = json.loads(header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"JSON header is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError("JSON header is not an object")
    try:
        ext = data.get("extFields") or {}
        if not isinstance(ext, dict):
            raise FrameError("extFields is not an object")
        language = data.get("language", "JAVA")
        if isinstance(language, int):
            language = LANGUAGES[language] if 0 <= language < len(LANGUAGES) else "OTHER"
        remark = data.get("remark")
        return RemotingCommand(
            code=_as_int(data.get("code"), "code"), opaque=_as_int(data.get("opaque", 0), "opaque"),
            flag=_as_int(data.get("flag", 0), "flag"), language=str(language),
            version=_as_int(data.get("version", 0), "version"),
            remark=None if remark is None else str(remark),
            ext_fields=ext if _all_strings(ext) else {str(k): _ext_value(v) for k, v in ext.items() if v is not None})
    except (TypeError, AttributeError) as exc:
        raise FrameError(f"JSON header has a field of the wrong type: {exc}") from None


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FrameError(f"header field {name!r} is not an integer: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise FrameError(f"header field {name!r} is not an integer: {value!r}") from None


def _all_strings(ext: dict[str, object]) -> bool:
    # The common case (every value already a string) keeps the parsed dict: no per-field conversion.
    for value in ext.values():
        if type(value) is not str:
            return False
    return True


def _ext_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _decode_binary_header(header: bytes) -> RemotingCommand:
    try:
        code, lang, version, opaque, flag = _BINARY_FIXED.unpack_from(header, 0)
        pos = _BINARY_FIXED.size
        (remark_len,) = struct.unpack_from(">i", header, pos)
        pos += 4
        remark = None
        if remark_len > 0:
            remark = _slice(header, pos, remark_len).decode()
            pos += remark_len
        (table_len,) = struct.unpack_from(">i", header, pos)
        pos += 4
        ext = _decode_binary_map(_slice(header, pos, table_len)) if table_len > 0 else {}
    except (struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"ROCKETMQ header is truncated or corrupt: {exc}") from None
    language = LANGUAGES[lang] if lang < len(LANGUAGES) else "OTHER"
    return RemotingCommand(code=code, opaque=opaque, flag=flag, language=language, version=version,
                           remark=remark, ext_fields=ext)


def _slice(buf: bytes, pos: int, length: int) -> bytes:
    if length < 0 or pos + length > len(buf):
        raise FrameError(f"length {length} at offset {pos} runs past the header ({len(buf)} bytes)")
    return buf[pos:pos + length]


def _decode_binary_map(table: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(table):
        (key_len,) = struct.unpack_from(">h", table, pos)
        key = _slice(table, pos + 2, key_len).decode()
        pos += 2 + key_len
        (value_len,) = struct.unpack_from(">i", table, pos)
        out[key] = _slice(table, pos + 4, value_len).decode()
        pos += 4 + value_len
    return out


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole commands back.

    An oversize or undecodable frame poisons the stream (it cannot be resynchronised): ``feed`` then returns
    the good commands that came before it in the same read and sets ``error``, so the caller can answer
    those first and then close the connection; any later ``feed`` raises that error. With no good command
    before the bad frame, ``feed`` raises at once.
    """

    def __init__(self, max_frame_length: int = MAX_FRAME_LENGTH) -> None:
        self._buffer = bytearray()
        self._max = max_frame_length
        self.error: FrameError | None = None

    def feed(self, data: bytes) -> list[RemotingCommand]:
        if self.error is not None:
            raise self.error
        self._buffer += data
        commands: list[RemotingCommand] = []
        try:
            self._drain(commands)
        except FrameError as exc:
            self.error = exc
            self._buffer.clear()
            if not commands:
                raise
        return commands

    def _drain(self, commands: list[RemotingCommand]) -> None:
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from(">i", self._buffer, 0)
            if length < 4 or length + 4 > self._max:
                raise FrameError(f"frame length {length} is outside 4..{self._max - 4}")
            if len(self._buffer) < length + 4:
                return
            frame = bytes(self._buffer[4:4 + length])
            del self._buffer[:4 + length]
            commands.append(decode_command(frame))

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)
