"""bandwidth: limit a direction to ``rate`` KB/s, where KB = 1000 bytes (as Toxiproxy)."""
from __future__ import annotations

import dataclasses

from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, Link, Toxic, register


@dataclasses.dataclass
class _Clock:
    free_at: float = 0.0
    """When the link has finished "transmitting" everything sent so far."""


@register
@dataclasses.dataclass
class Bandwidth(Toxic):
    type_name = "bandwidth"

    rate: int = 0
    """KB/s (1 KB = 1000 bytes); 0 or less means no limit."""

    def new_state(self) -> _Clock:
        return _Clock()

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        if self.rate <= 0:
            await emit(chunk)
            return
        piece = self.rate * 100  # what 100 ms carries: big chunks go out in 100 ms slices, not in one late burst
        data, clock = chunk.data, link.state
        for start in range(0, len(data), piece):
            part = data[start:start + piece]
            # An absolute schedule keeps the average rate exact however late the timers fire.
            clock.free_at = max(clock.free_at, link.now()) + len(part) / (self.rate * 1000.0)
            if not await link.sleep_until(clock.free_at):
                await emit(Chunk(data[start:], chunk.stamp))  # interrupted: flush the rest
                return
            await emit(Chunk(part, chunk.stamp))
