"""The asyncio remoting server every embedded node runs: framing, dispatch by request code, error replies.

Handlers are plain callables ``handler(request, connection)``. They return a response, ``None`` (no reply
now: the handler answers later through ``connection.send``, as long polling does), or an awaitable of
either, which runs as its own task. Keeping the fast path synchronous avoids a task per request.
A malformed or oversize frame closes that one connection; every other client keeps being served.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Union

from harness.remoting.codes import ResponseCode
from harness.remoting.frame import FrameDecoder, FrameError, RemotingCommand, encode_command

logger = logging.getLogger(__name__)

HandlerResult = Union[RemotingCommand, None, Awaitable[Union[RemotingCommand, None]]]
Handler = Callable[[RemotingCommand, "Connection"], HandlerResult]
_WRITE_HIGH_WATER = 4 * 1024 * 1024
_conn_ids = itertools.count(1)


class Connection(asyncio.Protocol):
    """One accepted client connection."""

    def __init__(self, server: RemotingServer) -> None:
        self._server = server
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self.conn_id = next(_conn_ids)
        self.peer = "?"
        self.closed = False
        self.last_active = asyncio.get_running_loop().time()
        self.attributes: dict[str, object] = {}
        """Free slots for handlers (e.g. the broker a NameServer connection belongs to)."""
        self._batch: list[bytes] | None = None
        self._late: list[bytes] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self._server._connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server._connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = asyncio.get_running_loop().time()
        try:
            commands = self._decoder.feed(data)
        except FrameError as exc:
            logger.warning("%s: closing connection %s from %s: %s", self._server.name, self.conn_id, self.peer, exc)
            self.close()
            return
        # Replies made while this chunk is dispatched leave in one write: a syscall per reply would cost
        # more than the whole send path when a client pipelines requests.
        self._batch = []
        try:
            for cmd in commands:
                self._server._dispatch(cmd, self)
        finally:
            batch, self._batch = self._batch, None
            if batch and self._transport is not None and not self._transport.is_closing():
                self._transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
        if self._decoder.error is not None:  # good frames came first in this read: answered, now close
            logger.warning("%s: closing connection %s from %s: %s", self._server.name, self.conn_id, self.peer,
                           self._decoder.error)
            self.close()

    # -- API for handlers
    def send(self, cmd: RemotingCommand) -> None:
        """Queue a command for writing; a closed connection drops it silently (the peer is gone)."""
        if self.closed or self._transport is None or self._transport.is_closing():
            return
        try:
            frame = encode_command(cmd)
        except FrameError as exc:
            logger.error("%s: cannot encode reply to %s: %s", self._server.name, self.peer, exc)
            frame = encode_command(RemotingCommand(
                code=ResponseCode.SYSTEM_ERROR, opaque=cmd.opaque, flag=cmd.flag, remark=str(exc)))
        if self._batch is not None:
            self._batch.append(frame)
        elif self._late is not None:
            self._late.append(frame)
        else:
            # Answered outside a read (a commit, a long-poll wake-up): many such answers come in one burst
            # of callbacks, so they too leave in one write at the end of this loop iteration.
            self._late = [frame]
            asyncio.get_running_loop().call_soon(self._flush_late)

    def _flush_late(self) -> None:
        late, self._late = self._late, None
        if late and self._transport is not None and not self._transport.is_closing():
            self._transport.write(late[0] if len(late) == 1 else b"".join(late))

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


class RemotingServer:
    """Listens on one address and dispatches requests to registered handlers."""

    def __init__(self, name: str, host: str, port: int, idle_timeout: float | None = 120.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.handlers: dict[int, Handler] = {}
        self.connections: dict[int, Connection] = {}
        self._close_callbacks: list[Callable[[Connection], None]] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_task: asyncio.Task[None] | None = None

    def register(self, code: int, handler: Handler) -> None:
        self.handlers[int(code)] = handler

    def on_connection_closed(self, callback: Callable[[Connection], None]) -> None:
        self._close_callbacks.append(callback)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), self.host, self.port,
                                                reuse_address=True, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.idle_timeout:
            self._idle_task = asyncio.create_task(self._close_idle_connections())
        logger.info("%s listening on %s:%s", self.name, self.host, self.port)

    async def stop(self) -> None:
        if self._idle_task:
            self._idle_task.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    # -- internals
    def _connection_opened(self, conn: Connection) -> None:
        self.connections[conn.conn_id] = conn

    def _connection_closed(self, conn: Connection) -> None:
        self.connections.pop(conn.conn_id, None)
        for callback in self._close_callbacks:
            try:
                callback(conn)
            except Exception:
                logger.exception("%s: connection-closed callback failed", self.name)

    def _dispatch(self, cmd: RemotingCommand, conn: Connection) -> None:
        if cmd.is_response:
            return  # we send no requests on accepted connections; a stray response is dropped
        handler = self.handlers.get(cmd.code)
        if handler is None:
            self._reply(cmd, conn, cmd.make_response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                                     f" request type {cmd.code} not supported"))
            return
        try:
            result = handler(cmd, conn)
        except Exception as exc:
            logger.exception("%s: handler for code %s failed", self.name, cmd.code)
            self._reply(cmd, conn, cmd.make_response(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}"))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(cmd, conn, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif result is not None:
            self._reply(cmd, conn, result)

    async def _finish(self, cmd: RemotingCommand, conn: Connection,
                      pending: Awaitable[RemotingCommand | None]) -> None:
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("%s: handler for code %s failed", self.name, cmd.code)
            response = cmd.make_response(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
        if response is not None:
            self._reply(cmd, conn, response)

    @staticmethod
    def _reply(cmd: RemotingCommand, conn: Connection, response: RemotingCommand) -> None:
        if not cmd.is_oneway:
            conn.send(response)

    async def _close_idle_connections(self) -> None:
        assert self.idle_timeout is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self.idle_timeout / 4, 10.0))
            now = loop.time()
            for conn in list(self.connections.values()):
                if now - conn.last_active > self.idle_timeout:
                    logger.info("%s: closing idle connection from %s", self.name, conn.peer)
                    conn.close()
