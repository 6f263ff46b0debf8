"""One proxied connection: the accepted client socket, the dialled upstream socket and a pipe each way.

The client is not read until the upstream connection is up, so nothing has to be buffered meanwhile. If the
upstream cannot be reached the client is closed (it sees EOF after a successful connect, as with Toxiproxy).
The sockets' protocols read into a reusable buffer that starts small and grows for bulk transfers, so
request/response traffic costs no allocation per read.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import struct
from typing import Any, Protocol

from chaos.proxy.listen import AddressError, format_address, upstream_host_port
from chaos.proxy.metrics import ProxyCounters
from chaos.proxy.pipe import Pipe
from chaos.proxy.stream import Direction
from chaos.proxy.toxic_chain import ToxicChain

logger = logging.getLogger(__name__)

_MIN_BUFFER, _MAX_BUFFER = 16 * 1024, 256 * 1024
_WRITE_HIGH_WATER = 1024 * 1024
_CLOSE_GRACE = 2.0
"""Seconds a closed socket may take to flush before it is aborted (a peer that never reads)."""
_LINGER_ZERO = struct.pack("ii", 1, 0)
_ids = itertools.count(1)


class ConnectionOwner(Protocol):
    """What a connection needs from its proxy."""

    name: str
    upstream: str
    toxics: ToxicChain
    counters: ProxyCounters
    rng: random.Random

    def connection_closed(self, conn: Connection) -> None: ...


class Side(asyncio.BufferedProtocol):
    """One socket of a connection. ``source`` is the pipe that reads it, ``sink`` the pipe that writes it."""

    def __init__(self, conn: Connection, role: str) -> None:
        self.conn = conn
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.source: Pipe | None = None
        self.sink: Pipe | None = None
        self.local = self.peer = ""
        self._size = _MIN_BUFFER
        self._view = memoryview(bytearray(self._size))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self.local = _address(transport.get_extra_info("sockname"))
        self.peer = _address(transport.get_extra_info("peername"))
        self.conn.side_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        assert self.source is not None, "reading starts only once both pipes exist"
        retained = self.source.feed(self._view[:nbytes])
        full = nbytes == self._size
        if retained or (full and self._size < _MAX_BUFFER):
            # The sink kept a view of our buffer (its send queue), or bulk data wants bigger reads.
            self._size = min(self._size * 2, _MAX_BUFFER) if full else self._size
            self._view = memoryview(bytearray(self._size))

    def eof_received(self) -> bool:
        if self.source is not None:
            self.source.feed_eof()
        return True  # keep the socket open: the other direction may still be sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.sink_paused()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.sink_resumed()


def _address(sockaddr: Any) -> str:
    return format_address(sockaddr) if isinstance(sockaddr, tuple) else ""


class Connection:
    """A client connection through a proxy; see the module docstring."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self.id = next(_ids)
        self.owner = owner
        self.client = Side(self, "client")
        self.upstream: Side | None = None
        self.pipes: dict[Direction, Pipe] = {}
        self.closing = False
        self._open_sides = 0
        self._finished = 0
        self._dial: asyncio.Task[None] | None = None

    # -- lifecycle
    def side_made(self, side: Side) -> None:
        self._open_sides += 1
        assert side.transport is not None
        side.transport.pause_reading()  # until both pipes exist (an upstream may speak first)
        if self.closing:
            side.transport.abort()  # the dial finished after the connection was given up
        elif side is self.client:
            self._dial = asyncio.get_running_loop().create_task(self._connect_upstream())
        else:
            self.upstream = side

    async def _connect_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = upstream_host_port(self.owner.upstream)
            await loop.create_connection(lambda: Side(self, "upstream"), host, port)
        except (OSError, AddressError) as exc:
            logger.warning("proxy %s: cannot reach upstream %s for client %s: %s",
                           self.owner.name, self.owner.upstream, self.client.peer, exc)
            self.close()
            return
        if not self.closing:
            self._link()

    def _link(self) -> None:
        client, upstream = self.client, self.upstream
        assert client.transport is not None and upstream is not None and upstream.transport is not None
        if self.owner.toxics.has_type("reset_peer"):
            # Toxiproxy sets SO_LINGER 0 at accept when a reset_peer toxic exists, so its close is an RST.
            for transport in (client.transport, upstream.transport):
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        up = self._pipe(Direction.UPSTREAM, client, upstream)
        down = self._pipe(Direction.DOWNSTREAM, upstream, client)
        client.source, upstream.sink, upstream.source, client.sink = up, up, down, down
        client.transport.resume_reading()
        upstream.transport.resume_reading()

    def _pipe(self, direction: Direction, source: Side, sink: Side) -> Pipe:
        assert source.transport is not None and sink.transport is not None
        pipe = Pipe(self, direction, source.transport, sink.transport,
                    self.owner.counters.direction(direction), self.owner.rng)
        for spec in self.owner.toxics.snapshot(direction):
            pipe.add_stage(spec)
        self.pipes[direction] = pipe
        return pipe

    def pipe_finished(self, pipe: Pipe) -> None:
        """A direction delivered its end of stream; once both have, the connection is done."""
        self._finished += 1
        if self._finished == 2:
            self.close()

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        self._open_sides -= 1
        self.close()  # one socket gone (closed or reset): close the other, as Toxiproxy does
        if self._open_sides == 0:
            self.owner.connection_closed(self)

    def close(self, abort: bool = False) -> None:
        """Close both sockets: gracefully (pending data, then FIN) or, with ``abort``, at once."""
        first = not self.closing
        self.closing = True
        if first:
            if self._dial is not None:
                self._dial.cancel()
            for pipe in self.pipes.values():
                pipe.close()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None and (first or abort):
                _close_transport(side.transport, abort)

    def describe(self) -> dict[str, str | None]:
        return {"client": self.client.peer,
                "upstream_local": self.upstream.local if self.upstream is not None else None}


def _close_transport(transport: asyncio.Transport, abort: bool) -> None:
    if abort:
        transport.abort()
        return
    transport.close()
    if transport.get_write_buffer_size():
        asyncio.get_running_loop().call_later(_CLOSE_GRACE, transport.abort)
