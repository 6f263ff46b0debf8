"""A proxy: a listener that forwards each accepted connection to one upstream, through its toxics."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator
from typing import Any

from chaos.proxy.link import Connection, Side
from chaos.proxy.listen import format_address, normalize, open_listener
from chaos.proxy.metrics import LiveProxy, MetricsRegistry, ProxyCounters
from chaos.proxy.pipe import Pipe
from chaos.proxy.stream import Direction
from chaos.proxy.toxic_chain import ToxicChain

logger = logging.getLogger(__name__)


class Proxy:
    """Named listen address -> upstream address, with toxics; disabled means not listening."""

    def __init__(self, name: str, listen: str, upstream: str, metrics: MetricsRegistry, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        """As given until the proxy first listens, then the resolved ``ip:port`` (port 0 becomes the real one)."""
        self.upstream = upstream
        """Kept as given; resolved each time a client connects."""
        self.enabled = False
        self.rng = rng
        self.toxics = ToxicChain(self._pipes)
        self.connections: dict[int, Connection] = {}
        self.accepted = 0
        self._metrics = metrics
        self.counters: ProxyCounters = ProxyCounters()
        self._server: asyncio.AbstractServer | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Listen; raises ApiError 500 (and stays disabled) if the address cannot be bound."""
        if self.enabled:
            return
        sock = await open_listener(self.listen)
        self.listen = format_address(sock.getsockname())
        self.counters = self._metrics.counters(self.name, self.listen, self.upstream)
        self._server = await asyncio.get_running_loop().create_server(self._accept, sock=sock, backlog=1024)
        self.enabled = True
        logger.info("proxy %s started on %s -> %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Stop listening (the port is released at once) and close every connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections.values()):
            conn.close()
        logger.info("proxy %s stopped", self.name)

    async def differs(self, listen: str, upstream: str) -> bool:
        """Whether a new listen/upstream means a restart; ``localhost:P`` equals ``127.0.0.1:P`` (Toxiproxy 2.12)."""
        return upstream != self.upstream or await normalize(listen) != self.listen

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's update: a changed address restarts the proxy (closing its connections)."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    async def drain(self, timeout: float) -> None:
        """Wait until every connection is gone; abort the stragglers after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        for conn in list(self.connections.values()):
            conn.close(abort=True)

    # -- connections
    def _accept(self) -> Side:
        conn = Connection(self)
        self.connections[conn.id] = conn
        self.accepted += 1
        self._idle.clear()
        return conn.client

    def connection_closed(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        if not self.connections:
            self._idle.set()

    def _pipes(self, direction: Direction) -> Iterator[Pipe]:
        for conn in self.connections.values():
            pipe = conn.pipes.get(direction)
            if pipe is not None and not conn.closing:  # a closing connection takes no new toxics
                yield pipe

    # -- views
    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's proxy object (``Logger`` included for parity) plus our ``stats``."""
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled,
                "Logger": {}, "toxics": [spec.to_json() for spec in self.toxics.all()], "stats": self.stats()}

    def stats(self) -> dict[str, Any]:
        return {"active_connections": len(self.connections), "accepted_connections": self.accepted,
                **self.counters.to_json()}

    def live(self) -> LiveProxy:
        return LiveProxy((self.name, self.listen, self.upstream), len(self.connections))

    def describe_connections(self) -> list[dict[str, str | None]]:
        return [conn.describe() for conn in self.connections.values()]
