"""A small HTTP/1.1 server on asyncio streams: enough for a JSON admin API, and strict about what it accepts.

It does keep-alive and pipelining (answers go out in request order), Content-Length and chunked request
bodies, and ``Expect: 100-continue`` (curl sends it for bodies over 1 KiB). Header and body sizes are
limited, and an idle connection and a slow handler time out. A malformed request gets a 4xx or 5xx answer
and its connection is closed; nothing a client sends can stop the server.
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http
import itertools
import logging
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9a-fA-F]{1,15}")
_MAX_TRAILERS = 64


@dataclasses.dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 4 * 1024 * 1024
    idle_timeout: float = 60.0
    """Seconds to wait for the next request's head on a kept-alive connection."""
    body_timeout: float = 15.0
    handler_timeout: float = 25.0
    """Past this a request gets a 503, as behind Toxiproxy's http.TimeoutHandler."""
    write_timeout: float = 30.0


@dataclasses.dataclass
class Request:
    method: str
    path: str
    """Percent-decoded, query string removed."""
    version: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """The request cannot be read; answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """Serves ``handler`` on an already bound listening socket."""

    def __init__(self, handler: Handler, limits: Limits = Limits()) -> None:
        self._handler = handler
        self.limits = limits
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=self.limits.max_header_bytes)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled; nothing to answer
        except asyncio.CancelledError:
            pass  # server stop. Ending normally matters: 3.11's StreamReaderProtocol calls exception() on us
        except Exception:
            logger.exception("API connection failed")
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection should close."""
        try:
            request = await self._read_request(reader, writer)
        except HttpError as exc:
            await self._send(writer, Response(exc.status, f"{exc.message}\n".encode(), "text/plain; charset=utf-8"),
                             keep_alive=False)
            return False
        if request is None:
            return False
        response = await self._respond(request)
        await self._send(writer, response, request.keep_alive)
        return request.keep_alive

    async def _respond(self, request: Request) -> Response:
        try:
            return await asyncio.wait_for(self._handler(request), self.limits.handler_timeout)
        except TimeoutError:
            logger.error("%s %s took over %.0f s", request.method, request.path, self.limits.handler_timeout)
            return Response(503, b"", "text/plain; charset=utf-8")
        except Exception as exc:
            logger.exception("%s %s failed", request.method, request.path)
            return Response(500, f"internal error: {type(exc).__name__}\n".encode(), "text/plain; charset=utf-8")

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.limits.idle_timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HttpError(400, "Bad Request: incomplete request head") from None
            return None
        except asyncio.LimitOverrunError:
            raise HttpError(431, "Request Header Fields Too Large") from None
        request = parse_head(head)
        body = asyncio.wait_for(self._read_body(request, reader, writer), self.limits.body_timeout)
        request.body = await body
        return request

    async def _read_body(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        headers = request.headers
        chunked = "transfer-encoding" in headers
        if chunked and "content-length" in headers:
            raise HttpError(400, "Bad Request: both Transfer-Encoding and Content-Length")  # request smuggling
        if chunked and headers["transfer-encoding"].lower() != "chunked":
            raise HttpError(501, "Not Implemented: transfer-encoding")
        length = 0 if chunked else _content_length(headers.get("content-length", "0"))
        if length > self.limits.max_body_bytes:
            raise HttpError(413, "Request Entity Too Large")
        if headers.get("expect", "").lower() == "100-continue" and (chunked or length):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            return await self._read_chunked(reader)
        return await reader.readexactly(length)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = _chunk_size(await _read_line(reader))
            if size == 0:
                break
            if len(body) + size > self.limits.max_body_bytes:
                raise HttpError(413, "Request Entity Too Large")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise HttpError(400, "Bad Request: malformed chunk")
        for _ in range(_MAX_TRAILERS):
            if await _read_line(reader) == b"":
                return bytes(body)
        raise HttpError(400, "Bad Request: too many trailers")

    async def _send(self, writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        writer.write(self._encode(response, keep_alive))
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout)

    def _encode(self, response: Response, keep_alive: bool) -> bytes:
        status = response.status
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {status} {phrase}", f"Date: {email.utils.formatdate(usegmt=True)}",
                 f"X-Toxiproxy-Request-Id: {next(self._ids):020d}"]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        if status != 204:
            lines.append(f"Content-Length: {len(response.body)}")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def parse_head(head: bytes) -> Request:
    """Request line and headers; raises HttpError for anything malformed."""
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise HttpError(400, "Bad Request: malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505 if re.fullmatch(r"HTTP/\d\.\d", version) else 400, "HTTP Version Not Supported")
    return Request(method, _path(target), version, _headers(lines[1:]))


def _path(target: str) -> str:
    if target.startswith(("http://", "https://")):
        target = urllib.parse.urlsplit(target).path or "/"
    if not target.startswith("/"):
        raise HttpError(400, "Bad Request: malformed request target")
    return urllib.parse.unquote(target.split("?", 1)[0], errors="replace")


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError(400, "Bad Request: malformed header")
        name, value = name.lower(), value.strip(" \t")
        if name in headers:
            if name in ("content-length", "transfer-encoding", "host") and headers[name] != value:
                raise HttpError(400, f"Bad Request: conflicting {name} headers")
            value = headers[name] if headers[name] == value else f"{headers[name]}, {value}"
        headers[name] = value
    return headers


def _content_length(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise HttpError(400, "Bad Request: invalid Content-Length")
    return int(text)


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    if not _HEX.fullmatch(size):
        raise HttpError(400, "Bad Request: invalid chunk size")
    return int(size, 16)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return (await reader.readuntil(b"\r\n"))[:-2]
    except asyncio.LimitOverrunError:
        raise HttpError(400, "Bad Request: line too long") from None
