"""One direction of one proxied connection: bytes from a source socket to a sink socket through toxics.

With no active toxic a pipe writes what it reads straight to the sink from the read callback (the fast path:
no task, no copy). Otherwise chunks are stamped, queued and moved by a worker task through the chain of
stages, one stage per toxic. Back-pressure: the source stops being read while the sink's write buffer is
above its high-water mark or the queue holds too much.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from chaos.proxy.metrics import ByteCounters
from chaos.proxy.stream import Chunk, Direction
from chaos.proxy.toxic_spec import ToxicSpec

logger = logging.getLogger(__name__)

_QUEUE_HIGH = 4 * 1024 * 1024
_QUEUE_LOW = 1024 * 1024
_SINK_FULL, _QUEUE_FULL = 1, 2  # reasons for not reading the source


class PipeOwner(Protocol):
    """The connection a pipe belongs to."""

    def close(self, abort: bool = False) -> None: ...

    def pipe_finished(self, pipe: Pipe) -> None: ...


class Stage:
    """One toxic running on one pipe (Toxiproxy's ToxicStub); implements the toxics' ``Link``."""

    __slots__ = ("spec", "pipe", "active", "state", "_timers", "_wake")

    def __init__(self, spec: ToxicSpec, pipe: Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.active = False
        self.state: Any = spec.toxic.new_state()
        self._timers: list[asyncio.TimerHandle] = []
        self._wake: asyncio.Future[bool] | None = None

    @property
    def rng(self) -> random.Random:
        return self.pipe.rng

    def start(self) -> None:
        """Draw toxicity for this connection direction, then start the toxic if it won."""
        self.active = self.rng.random() < self.spec.toxicity
        if self.active:
            self.spec.toxic.on_start(self)

    def restart(self) -> None:
        """After an update: flush what the old settings hold, then start again with a fresh draw."""
        self._halt()
        self.start()

    def stop(self, removed: bool) -> None:
        was_active = self.active
        self.active = False
        self._halt()
        if removed and was_active:
            self.spec.toxic.on_removed(self)

    def _halt(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(False)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- Link
    def now(self) -> float:
        return self.pipe.loop.time()

    async def sleep(self, seconds: float) -> bool:
        return await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, when: float) -> bool:
        if not self.active:
            return False  # removed (or restarted) while passing a chunk on: flush, do not wait
        if when <= self.now():
            return True
        wake: asyncio.Future[bool] = self.pipe.loop.create_future()
        self._wake = wake
        timer = self.pipe.loop.call_at(when, _resolve, wake)
        try:
            return await wake
        finally:
            timer.cancel()
            if self._wake is wake:
                self._wake = None

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        self._timers.append(self.pipe.loop.call_later(seconds, callback))

    def close_link(self) -> None:
        self.pipe.owner.close()

    def reset_link(self) -> None:
        self.pipe.owner.close(abort=True)


def _resolve(wake: asyncio.Future[bool]) -> None:
    if not wake.done():
        wake.set_result(True)


class Pipe:
    """Moves one direction's bytes; see the module docstring."""

    def __init__(self, owner: PipeOwner, direction: Direction, source: asyncio.Transport,
                 sink: asyncio.Transport, counters: ByteCounters, rng: random.Random) -> None:
        self.owner = owner
        self.direction = direction
        self.source = source
        self.sink = sink
        self.counters = counters
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self._stages: list[Stage] = []
        self._slow = False
        self._queue: deque[Chunk | None] = deque()  # None marks the end of the stream
        self._queued = 0
        self._worker: asyncio.Task[None] | None = None
        self._holds = 0
        self._sink_ready: asyncio.Future[None] | None = None
        self._eof_sent = False

    # -- toxics
    def add_stage(self, spec: ToxicSpec) -> None:
        stage = Stage(spec, self)
        self._stages.append(stage)
        stage.start()
        self._refresh()

    def restart_stage(self, spec: ToxicSpec) -> None:
        for stage in self._stages:
            if stage.spec is spec:
                stage.restart()
        self._refresh()

    def remove_stage(self, spec: ToxicSpec) -> None:
        for stage in [s for s in self._stages if s.spec is spec]:
            self._stages.remove(stage)
            stage.stop(removed=True)
        self._refresh()

    def _refresh(self) -> None:
        self._slow = any(stage.active for stage in self._stages)

    # -- data in (called from the source socket's protocol)
    def feed(self, data: memoryview) -> bool:
        """Take bytes just read; True if the sink kept a reference to ``data`` (the caller needs a new buffer)."""
        self.counters.received += len(data)
        if not self._slow and self._worker is None:
            return self._write(data)
        self._enqueue(Chunk(bytes(data), self.loop.time()))
        return False

    def feed_eof(self) -> None:
        if not self._slow and self._worker is None:
            self._deliver_eof()
        else:
            self._enqueue(None)

    def _enqueue(self, item: Chunk | None) -> None:
        self._queue.append(item)
        if item is not None:
            self._queued += len(item.data)
            if self._queued > _QUEUE_HIGH:
                self._hold(_QUEUE_FULL)
        if self._worker is None:
            self._worker = self.loop.create_task(self._work())

    # -- the slow path
    async def _work(self) -> None:
        try:
            while self._queue:
                item = self._queue.popleft()
                chain = tuple(self._stages)
                if item is None:
                    await self._through_eof(chain, 0)
                    continue
                self._queued -= len(item.data)
                if self._queued <= _QUEUE_LOW:
                    self._release(_QUEUE_FULL)
                await self._through(chain, 0, item)
        except Exception:
            logger.exception("%s pipe failed; closing its connection", self.direction.value)
            self.owner.close(abort=True)
        finally:
            self._worker = None

    async def _through(self, chain: tuple[Stage, ...], i: int, chunk: Chunk) -> None:
        # A chunk keeps the chain it started with; stages removed meanwhile are skipped (inactive).
        while i < len(chain) and not chain[i].active:
            i += 1
        if i == len(chain):
            if self._sink_ready is not None:
                await self._sink_ready
            self._write(chunk.data)
            return
        stage = chain[i]
        await stage.spec.toxic.pipe(stage, chunk, functools.partial(self._through, chain, i + 1))

    async def _through_eof(self, chain: tuple[Stage, ...], i: int) -> None:
        while i < len(chain) and not chain[i].active:
            i += 1
        if i == len(chain):
            self._deliver_eof()
            return
        stage = chain[i]
        await stage.spec.toxic.pipe_eof(stage, functools.partial(self._through_eof, chain, i + 1))

    # -- data out
    def _write(self, data: bytes | memoryview) -> bool:
        sink = self.sink
        if self._eof_sent or sink.is_closing():
            return False  # the peer is gone; what it would have got is lost, as with any TCP peer
        sink.write(data)
        self.counters.sent += len(data)
        return sink.get_write_buffer_size() > 0

    def _deliver_eof(self) -> None:
        if self._eof_sent:
            return
        self._eof_sent = True
        if not self.sink.is_closing():
            if self.sink.can_write_eof():
                self.sink.write_eof()  # half-close: the other direction may still carry a reply
            else:
                self.sink.close()
        self.owner.pipe_finished(self)

    # -- back-pressure (called from the sink socket's protocol)
    def sink_paused(self) -> None:
        if self._sink_ready is None:
            self._sink_ready = self.loop.create_future()
        self._hold(_SINK_FULL)

    def sink_resumed(self) -> None:
        ready, self._sink_ready = self._sink_ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)
        self._release(_SINK_FULL)

    def _hold(self, reason: int) -> None:
        if not self._holds:
            self.source.pause_reading()
        self._holds |= reason

    def _release(self, reason: int) -> None:
        if self._holds & reason:
            self._holds &= ~reason
            if not self._holds:
                self.source.resume_reading()

    def close(self) -> None:
        """The connection is closing: stop timers and the worker; nothing more is written."""
        for stage in self._stages:
            stage.stop(removed=False)
        if self._worker is not None:
            self._worker.cancel()
        if self._sink_ready is not None:
            self._sink_ready.cancel()
