"""Helpers for tests and benchmarks: the server on a background thread, a threaded echo server, and waiting
for a condition with a deadline (instead of sleeping a fixed time)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from chaos.proxy.server import ToxiproxyServer

R = TypeVar("R")


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005,
               message: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy; TimeoutError naming ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(interval)


class ServerThread:
    """A :class:`ToxiproxyServer` on its own event loop in a daemon thread, for blocking test code."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        self._kwargs = kwargs
        self.server: ToxiproxyServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="toxiproxy-server", daemon=True)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        self._ready.result(timeout)  # re-raises a start failure here
        return self

    def call(self, coro: Coroutine[Any, Any, R], timeout: float = 10.0) -> R:
        """Run a coroutine on the server's loop (to inspect or drive the server directly)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the server thread did not stop")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = ToxiproxyServer(**self._kwargs)
        try:
            await self.server.start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class EchoServer:
    """Echoes every byte back, one thread per connection; records the peers it accepted."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self.peers: list[str] = []
        """``ip:port`` of every accepted client, in accept order."""
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept_loop)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
                self.peers.append(f"{peer[0]}:{peer[1]}")
            self._spawn(self._echo, conn)

    def _echo(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        for sock in [self._listener, *conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept or recv (Linux)
        self._listener.close()
        for thread in self._threads:
            thread.join(5.0)

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def connect(address: str, timeout: float = 5.0) -> socket.socket:
    """A TCP connection (Nagle off) whose blocking calls give up after ``timeout`` seconds."""
    sock = socket.create_connection(split_address(address), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes; EOFError if the peer closes first."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the peer closes (socket.timeout if it does not within the socket's timeout)."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def nothing_arrives(sock: socket.socket, within: float) -> bool:
    """True if neither data nor EOF arrives within ``within`` seconds (a black hole)."""
    previous = sock.gettimeout()
    sock.settimeout(within)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(previous)
    return False
