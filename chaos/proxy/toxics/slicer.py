"""slicer: cut each chunk into pieces of about ``average_size`` ± ``size_variation`` bytes, with ``delay``
microseconds between pieces. Unlike Toxiproxy (which recurses forever and crashes the whole server on
``average_size`` 0), sizes that cannot terminate are refused with a 400."""
from __future__ import annotations

import dataclasses
import random

from chaos.proxy.errors import bad_body
from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, Link, Toxic, register


@register
@dataclasses.dataclass
class Slicer(Toxic):
    type_name = "slicer"
    go_int = "int"

    average_size: int = 0
    """Target piece size in bytes; must be at least 1."""
    size_variation: int = 0
    """Random variation of the cut point in bytes; should be below average_size."""
    delay: int = 0
    """Microseconds to wait after each piece."""

    def validate(self) -> None:
        if self.average_size < 1:
            raise bad_body("slicer average_size must be at least 1")
        if self.size_variation < 0:
            raise bad_body("slicer size_variation must not be negative")

    def cuts(self, length: int, rng: random.Random) -> list[tuple[int, int]]:
        """Piece bounds, found by halving around a random mid point (iteratively: no recursion limit)."""
        pieces: list[tuple[int, int]] = []
        todo = [(0, length)]
        while todo:
            start, end = todo.pop()
            if end - start - self.average_size <= self.size_variation:
                pieces.append((start, end))
                continue
            mid = start + (end - start) // 2
            if self.size_variation > 0:
                mid += rng.randrange(2 * self.size_variation) - self.size_variation
            mid = min(max(mid, start + 1), end - 1)  # every piece non-empty, so this always ends
            todo += [(mid, end), (start, mid)]
        return pieces

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        data = chunk.data
        for start, end in self.cuts(len(data), link.rng):
            await emit(Chunk(data[start:end], chunk.stamp))
            if not await link.sleep(self.delay / 1e6) and end < len(data):
                await emit(Chunk(data[end:], chunk.stamp))  # interrupted: flush the rest
                return
