"""Outbound peer connections of a Raft member: one TCP connection per peer, to exactly the address the
group config names (later a Toxiproxy proxy), re-opened with backoff whenever it drops.

Requests are matched to responses by opaque and answered through a callback rather than a future, so a
pipelined push costs no task; a request that gets no answer within its timeout, or whose connection drops,
is answered with None (the caller treats it as lost).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from harness.remoting.frame import FrameDecoder, FrameError, RemotingCommand, encode_command

logger = logging.getLogger(__name__)

ResponseCallback = Callable[[RemotingCommand | None], None]
_SWEEP_INTERVAL = 0.05


class _LinkProtocol(asyncio.Protocol):
    """One connection attempt's protocol; events from a connection that was replaced are ignored."""

    def __init__(self, link: PeerLink) -> None:
        self.link = link
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            commands = self.decoder.feed(data)
        except FrameError as exc:
            logger.warning("raft link %s: undecodable frame, reconnecting: %s", self.link.peer_id, exc)
            assert self.transport is not None
            self.transport.close()
            return
        for cmd in commands:
            self.link.on_response(cmd)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class PeerLink:
    """The connection from this node to one peer."""

    def __init__(self, peer_id: str, addr: str, *, reconnect_max: float = 1.0, connect_timeout: float = 1.0,
                 on_connected: Callable[[str], None] | None = None) -> None:
        host, _, port = addr.rpartition(":")
        self.peer_id = peer_id
        self.addr = addr
        self._host, self._port = host, int(port)
        self._reconnect_max = reconnect_max
        self._connect_timeout = connect_timeout
        self._on_connected = on_connected
        self._protocol: _LinkProtocol | None = None
        self._pending: dict[int, tuple[ResponseCallback, float]] = {}
        self._opaques = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        proto = self._protocol
        return proto is not None and proto.transport is not None and not proto.transport.is_closing()

    @property
    def write_buffer_size(self) -> int:
        proto = self._protocol
        return proto.transport.get_write_buffer_size() if proto and proto.transport else 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"raft-link-{self.peer_id}")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._drop_connection()

    def request(self, cmd: RemotingCommand, callback: ResponseCallback, timeout: float) -> bool:
        """Send ``cmd`` (its opaque is overwritten: build one command per peer); ``callback`` gets the
        response, or None on timeout or a lost connection. Returns False (and never calls back) when there is no connection right now."""
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return False
        cmd.opaque = next(self._opaques)
        self._pending[cmd.opaque] = (callback, asyncio.get_running_loop().time() + timeout)
        proto.transport.write(encode_command(cmd))
        return True

    def on_response(self, cmd: RemotingCommand) -> None:
        entry = self._pending.pop(cmd.opaque, None)
        if entry is not None:  # a late answer to a request we already gave up on is dropped
            _call(entry[0], cmd)

    # -- internals
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while not self._closed:
            try:
                await self._connect()
            except (OSError, asyncio.TimeoutError) as exc:
                logger.debug("raft link %s: connect to %s failed: %s", self.peer_id, self.addr, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max)
                continue
            opened = loop.time()
            logger.info("raft link %s: connected to %s", self.peer_id, self.addr)
            if self._on_connected is not None:
                self._on_connected(self.peer_id)
            await self._serve_connection()
            logger.info("raft link %s: connection to %s lost", self.peer_id, self.addr)
            if loop.time() - opened > 1.0:
                backoff = 0.05
            else:  # a proxy that accepts and drops at once must not make us spin
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _LinkProtocol(self), self._host, self._port),
            self._connect_timeout)
        self._protocol = proto

    async def _serve_connection(self) -> None:
        proto = self._protocol
        assert proto is not None
        try:
            while not proto.lost.done():
                await asyncio.wait([proto.lost], timeout=_SWEEP_INTERVAL)
                self._expire(asyncio.get_running_loop().time())
        finally:
            self._drop_connection()

    def _expire(self, now: float) -> None:
        expired = [opaque for opaque, (_, deadline) in self._pending.items() if deadline <= now]
        for opaque in expired:
            callback, _ = self._pending.pop(opaque)
            _call(callback, None)

    def _drop_connection(self) -> None:
        proto, self._protocol = self._protocol, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
        pending, self._pending = self._pending, {}
        for callback, _ in pending.values():
            _call(callback, None)


def _call(callback: ResponseCallback, response: RemotingCommand | None) -> None:
    try:
        callback(response)
    except Exception:
        logger.exception("raft link: response callback failed")
