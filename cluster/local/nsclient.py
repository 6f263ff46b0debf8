"""A small asyncio remoting client for the broker's calls to NameServers (register, unregister).

One long-lived connection per address, opened on first use and again after any failure (as the Java
NettyRemotingClient does). Responses are matched by opaque; a timed-out request leaves the connection
open (Java's default clientCloseSocketIfTimeout=false): closing it would make the NameServer drop this
broker at once, turning a slow link into a route change.
"""
from __future__ import annotations

import asyncio
import itertools
import logging

from harness.errors import RemotingConnectError, RemotingError, RemotingTimeoutError
from harness.remoting.frame import FLAG_ONEWAY, FrameDecoder, FrameError, RemotingCommand, encode_command

logger = logging.getLogger(__name__)
_opaques = itertools.count(1)


class AsyncRemotingClient:
    def __init__(self, addr: str, timeout: float) -> None:
        self.addr = addr
        self.timeout = timeout
        host, _, port = addr.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[RemotingCommand]] = {}
        self._connect_lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def invoke(self, request: RemotingCommand, timeout: float | None = None) -> RemotingCommand:
        """Send ``request`` and wait for its response; raises RemotingError subclasses on failure."""
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        writer = await self._connection(timeout)
        request.opaque = next(_opaques)
        future: asyncio.Future[RemotingCommand] = loop.create_future()
        self._pending[request.opaque] = future
        try:
            writer.write(encode_command(request))
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise RemotingTimeoutError(f"{self.addr}: no response to code {request.code} "
                                       f"within {timeout:.1f}s") from None
        finally:
            self._pending.pop(request.opaque, None)

    async def invoke_oneway(self, request: RemotingCommand) -> None:
        writer = await self._connection(self.timeout)
        request.opaque = next(_opaques)
        request.flag |= FLAG_ONEWAY
        writer.write(encode_command(request))

    async def _connection(self, timeout: float) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self._host, self._port), timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                raise RemotingConnectError(f"cannot connect to {self.addr}: {exc or 'timeout'}") from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_loop(reader, writer))
            return writer

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        error: Exception = RemotingConnectError(f"connection to {self.addr} closed")
        try:
            while data := await reader.read(65536):
                for cmd in decoder.feed(data):
                    future = self._pending.get(cmd.opaque) if cmd.is_response else None
                    if future is not None and not future.done():
                        future.set_result(cmd)
        except (OSError, FrameError) as exc:
            error = RemotingError(f"connection to {self.addr} failed: {exc}")
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(error)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        self._writer = None
