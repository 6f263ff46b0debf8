"""latency: delay every chunk by ``latency`` ms plus a uniform jitter in [-jitter, +jitter) ms."""
from __future__ import annotations

import dataclasses

from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, Link, Toxic, register


@register
@dataclasses.dataclass
class Latency(Toxic):
    type_name = "latency"

    latency: int = 0
    """Milliseconds added to each chunk."""
    jitter: int = 0
    """Milliseconds of uniform random variation around ``latency``."""

    def delay_ms(self, link: Link) -> int:
        if self.jitter <= 0:
            return self.latency
        return self.latency + link.rng.randrange(2 * self.jitter) - self.jitter

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        # Due time counts from when the chunk was read, so chunks queued behind this one are not delayed twice;
        # moving the stamp forward makes several latency toxics add up, as in Toxiproxy.
        due = chunk.stamp + self.delay_ms(link) / 1000.0
        if await link.sleep_until(due):
            chunk.stamp = due
        await emit(chunk)  # also when interrupted: an update or removal flushes, never drops
