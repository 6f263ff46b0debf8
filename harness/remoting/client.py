"""Blocking, thread-safe remoting transport: one long-lived TCP connection per address, many calls in flight.

Only stdlib socket/threading/time are used, so under gevent monkey-patching (Locust patches on import) the
reader thread becomes a greenlet and every blocking call yields. Responses are matched to requests by
opaque (one process-wide counter, like the Java client's AtomicInteger); a command without the response
flag is a server->client request (NOTIFY_CONSUMER_IDS_CHANGED and friends) and goes to ``on_request``.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from harness.errors import RemotingConnectError, RemotingError, RemotingTimeoutError
from harness.remoting.codes import ResponseCode
from harness.remoting.frame import (FLAG_ONEWAY, FLAG_RESPONSE, FrameDecoder, FrameError, RemotingCommand,
                                    encode_command)

logger = logging.getLogger(__name__)

RequestHandler = Callable[["RemotingConnection", RemotingCommand], "RemotingCommand | None"]
#: Turns a response into the future's result inside the reader thread (raising fails the future instead).
Converter = Callable[[RemotingCommand], Any]
_opaques = itertools.count(1)
_RECV_SIZE = 256 * 1024
#: A write that cannot finish in this time (a black-holed peer with full buffers) closes the connection;
#: the same socket timeout makes the reader wake up on idle connections, which it simply ignores.
DEFAULT_IO_TIMEOUT = 10.0


def encode_frame(cmd: RemotingCommand) -> bytes:
    """Commands may render their own frame (the send hot path pre-renders its header); others use the codec."""
    render = getattr(cmd, "encode_frame", None)
    return render() if render is not None else encode_command(cmd)  # type: ignore[no-any-return]


def next_opaque() -> int:
    # opaque is an int32 on the wire (binary headers); wrap like Java's AtomicInteger would, but stay >= 0.
    return next(_opaques) & 0x7FFFFFFF


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise RemotingConnectError(f"bad address {addr!r}: expected host:port")
    return host.strip("[]"), int(port)


_Pending = tuple["Future[Any]", "Converter | None"]


def _complete(entry: _Pending, outcome: RemotingCommand | BaseException) -> None:
    fut, convert = entry
    try:
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
            return
        try:
            result = convert(outcome) if convert is not None else outcome
        except Exception as exc:  # the converter's verdict on the response (e.g. an error code)
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass  # the caller cancelled the future; that must not break the reader or the sweeper


class _Sweeper:
    """Fails pipelined calls whose response never came: one heap of deadlines for the whole process.

    Entries of answered calls stay in the heap until their deadline (lazy deletion): popping the pending
    entry is what decides who completes a future, so a late sweep of an answered call is a no-op."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, RemotingConnection, int, float]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, timeout: float, opaque: int, conn: RemotingConnection, code: int) -> None:
        entry = (time.monotonic() + timeout, opaque, conn, code, timeout)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="remoting-sweeper", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # only an earlier deadline than the one being waited for needs a wake-up
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                expired = self._pop_expired()
                if not expired:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                    continue
            for _deadline, opaque, conn, code, timeout in expired:
                conn._expire(opaque, code, timeout)

    def _pop_expired(self) -> list[tuple[float, int, RemotingConnection, int, float]]:
        now = time.monotonic()
        expired = []
        while self._heap and self._heap[0][0] <= now:
            expired.append(heapq.heappop(self._heap))
        return expired


_sweeper: _Sweeper | None = None


def _sweep_after(timeout: float, opaque: int, conn: RemotingConnection, code: int) -> None:
    # Made on first use, not at import: its lock must be gevent's when Locust patched after importing us.
    global _sweeper
    if _sweeper is None:
        _sweeper = _Sweeper()
    _sweeper.add(timeout, opaque, conn, code)


def _forget_sweeper() -> None:
    global _sweeper
    _sweeper = None  # a forked child (Locust --processes) inherits the heap but not the thread


os.register_at_fork(after_in_child=_forget_sweeper)


class RemotingConnection:
    """One TCP connection to ``addr`` with a reader thread; connects in the constructor.

    Raises RemotingConnectError if the connection cannot be opened."""

    def __init__(self, addr: str, connect_timeout: float = 3.0, on_request: RequestHandler | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        self.addr = addr
        self._on_request = on_request
        self._pending: dict[int, _Pending] = {}
        self._write_lock = threading.Lock()
        self._outbox: list[bytes] = []
        self._writing = False
        self._writer: threading.Thread | None = None
        self._writer_wake = threading.Event()
        self._closed = False
        self._close_reason = "closed"
        self._sock = self._connect(connect_timeout, io_timeout)
        self._reader = threading.Thread(target=self._read_loop, name=f"remoting-reader-{addr}", daemon=True)
        self._reader.start()

    def _connect(self, connect_timeout: float, io_timeout: float) -> socket.socket:
        host, port = split_addr(self.addr)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise RemotingConnectError(f"{self.addr}: cannot connect: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(io_timeout)
        return sock

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------ calls

    def invoke(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Send ``cmd`` and wait for its response; RemotingTimeoutError when none comes within ``timeout``."""
        fut = self._register(cmd)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            if self._pending.pop(cmd.opaque, None) is None:
                # Someone else popped it in the meantime (reader, close) and completes it right now.
                return fut.result()
            raise RemotingTimeoutError(
                f"{self.addr}: no response to request code {cmd.code} within {timeout:.3f}s") from None

    def invoke_async(self, cmd: RemotingCommand, timeout: float, convert: Converter | None = None) -> Future[Any]:
        """Send ``cmd`` without waiting; the future fails with RemotingTimeoutError after ``timeout``.

        With ``convert``, the future's result is ``convert(response)``, computed in the reader thread."""
        fut = self._register(cmd, convert, defer=True)
        if not fut.done():
            _sweep_after(timeout, cmd.opaque, self, cmd.code)
        return fut

    def invoke_oneway(self, cmd: RemotingCommand) -> None:
        cmd.opaque = next_opaque()
        cmd.flag = (cmd.flag | FLAG_ONEWAY) & ~FLAG_RESPONSE
        if self._closed:
            raise RemotingConnectError(f"{self.addr}: connection {self._close_reason}")
        self._write(encode_frame(cmd))

    def _register(self, cmd: RemotingCommand, convert: Converter | None = None, defer: bool = False) -> Future[Any]:
        cmd.opaque = opaque = next_opaque()
        cmd.flag &= ~(FLAG_RESPONSE | FLAG_ONEWAY)
        frame = encode_frame(cmd)
        fut: Future[Any] = Future()
        # Registered before the write: the response may arrive before _write returns.
        self._pending[opaque] = (fut, convert)
        if self._closed:  # checked after registering, so a concurrent close() either sees us or we see it
            self._pending.pop(opaque, None)
            raise RemotingConnectError(f"{self.addr}: connection {self._close_reason}")
        self._write(frame, defer)
        return fut

    def _write(self, frame: bytes, defer: bool = False) -> None:
        """Serialized writes: whoever finds no write in progress becomes the writer and sends, in one
        sendall, everything queued meanwhile. ``defer`` hands that job to the connection's writer thread,
        so pipelined callers never wait for a syscall and their frames leave in large batches."""
        with self._write_lock:
            self._outbox.append(frame)
            if self._writing:
                return
            self._writing = True
            if defer and self._writer is None:
                self._writer = threading.Thread(target=self._writer_loop, name=f"remoting-writer-{self.addr}",
                                                daemon=True)
                self._writer.start()
        if defer:
            self._writer_wake.set()
        else:
            self._flush()

    def _flush(self) -> None:
        while True:
            with self._write_lock:
                if self._closed:
                    self._outbox.clear()  # their callers are pending and were failed by _shutdown
                if not self._outbox:
                    self._writing = False
                    return
                data = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
                self._outbox.clear()
            try:
                self._sock.sendall(data)
            except OSError as exc:
                with self._write_lock:
                    self._writing = False
                self._shutdown(f"write failed: {exc!r}")
                raise RemotingError(f"{self.addr}: write failed, outcome unknown: {exc!r}") from None

    def _writer_loop(self) -> None:
        while not self._closed:
            self._writer_wake.wait()
            self._writer_wake.clear()
            try:
                self._flush()
            except RemotingError:
                return  # _shutdown failed every pending call already

    def _expire(self, opaque: int, code: int, timeout: float) -> None:
        entry = self._pending.pop(opaque, None)
        if entry is not None:
            _complete(entry, RemotingTimeoutError(
                f"{self.addr}: no response to request code {code} within {timeout:.3f}s"))

    # ------------------------------------------------------------ reading

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        reason = "closed by peer"
        try:
            while not self._closed:
                try:
                    data = self._sock.recv(_RECV_SIZE)
                except (socket.timeout, TimeoutError):
                    continue  # idle; the socket timeout exists to bound writes
                if not data:
                    break
                for cmd in decoder.feed(data):
                    self._dispatch(cmd)
                if decoder.error is not None:  # good frames before a bad one were served; now give up
                    raise decoder.error
        except FrameError as exc:
            reason = f"undecodable frame: {exc}"
            logger.warning("%s: closing connection: %s", self.addr, reason)
        except OSError as exc:
            reason = f"read failed: {exc!r}"
        finally:
            self._shutdown(reason)
            self._sock.close()

    def _dispatch(self, cmd: RemotingCommand) -> None:
        if cmd.flag & FLAG_RESPONSE:
            entry = self._pending.pop(cmd.opaque, None)
            if entry is None:
                logger.debug("%s: response to unknown or expired opaque %s dropped", self.addr, cmd.opaque)
            else:
                _complete(entry, cmd)
        else:
            self._serve_request(cmd)

    def _serve_request(self, request: RemotingCommand) -> None:
        try:
            response = self._on_request(self, request) if self._on_request else None
        except Exception as exc:  # a handler bug must not kill the reader
            logger.exception("%s: handler of request code %s failed", self.addr, request.code)
            response = request.make_response(ResponseCode.SYSTEM_ERROR, repr(exc))
        if request.is_oneway:
            return  # never answer a oneway request, not even with an error
        if response is None:
            response = request.make_response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                              f" request type {request.code} not supported")
        response.opaque = request.opaque
        response.flag |= FLAG_RESPONSE
        # Deferred: the reader must never block in a write (a peer blocked writing to us would deadlock it).
        self._write(encode_command(response), defer=True)

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        self._shutdown("closed by client")

    def _shutdown(self, reason: str) -> None:
        """Mark closed, wake the reader, and fail every pending call at once (not after its timeout)."""
        if not self._closed:
            self._close_reason = reason
            self._closed = True
            self._writer_wake.set()  # lets the writer thread see the close and end
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        while self._pending:
            try:
                _opaque, entry = self._pending.popitem()
            except KeyError:
                break
            _complete(entry, RemotingError(f"{self.addr}: connection {self._close_reason}; outcome unknown"))

    def __repr__(self) -> str:
        state = f"closed ({self._close_reason})" if self._closed else f"{len(self._pending)} pending"
        return f"<RemotingConnection {self.addr} {state}>"
