"""Connections by address: one RemotingConnection per broker or NameServer, opened on first use and reopened
lazily after it failed (a broker restart, an idle close, a fault)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

from harness.errors import RemotingConnectError
from harness.remoting.client import DEFAULT_IO_TIMEOUT, Converter, RemotingConnection, RequestHandler
from harness.remoting.frame import RemotingCommand


class ConnectionPool:
    """One connection per address, opened on first use and reopened lazily after it failed."""

    def __init__(self, connect_timeout: float = 3.0, on_request: RequestHandler | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        self.connect_timeout = connect_timeout
        self._on_request = on_request
        self._io_timeout = io_timeout
        self._conns: dict[str, RemotingConnection] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._failures: dict[str, tuple[float, str]] = {}  # addr -> (when, why) of the last failed connect
        self._lock = threading.Lock()
        self._closed = False

    def get(self, addr: str, connect_timeout: float | None = None) -> RemotingConnection:
        conn = self._conns.get(addr)
        if conn is not None and not conn.closed:
            return conn
        waiting_since = time.monotonic()
        with self._lock:
            addr_lock = self._locks.setdefault(addr, threading.Lock())
        with addr_lock:  # one connect per address at a time; other addresses are not held up
            conn = self._conns.get(addr)
            if conn is not None and not conn.closed:
                return conn
            if self._closed:
                raise RemotingConnectError(f"{addr}: connection pool is closed")
            failed = self._failures.get(addr)
            if failed is not None and failed[0] >= waiting_since:
                # The attempt we queued behind just failed: share its verdict instead of waiting as long again
                # (a black-holed broker would otherwise cost every queued caller a full connect timeout).
                raise RemotingConnectError(f"{failed[1]} (attempt shared with a concurrent caller)")
            try:
                conn = RemotingConnection(addr, connect_timeout or self.connect_timeout, self._on_request,
                                          self._io_timeout)
            except RemotingConnectError as exc:
                self._failures[addr] = (time.monotonic(), str(exc))
                raise
            self._conns[addr] = conn
            return conn

    def invoke(self, addr: str, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """A sync call whose ``timeout`` covers connecting too."""
        start = time.monotonic()
        conn = self.get(addr, min(self.connect_timeout, timeout))
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            raise RemotingConnectError(f"{addr}: connecting used up the {timeout:.3f}s budget; nothing sent")
        return conn.invoke(cmd, remaining)

    def invoke_async(self, addr: str, cmd: RemotingCommand, timeout: float,
                     convert: Converter | None = None) -> Future[Any]:
        return self.get(addr, min(self.connect_timeout, timeout)).invoke_async(cmd, timeout, convert)

    def invoke_oneway(self, addr: str, cmd: RemotingCommand) -> None:
        self.get(addr).invoke_oneway(cmd)

    def close_addr(self, addr: str) -> None:
        conn = self._conns.pop(addr, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._closed = True
        for addr in list(self._conns):
            self.close_addr(addr)

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
