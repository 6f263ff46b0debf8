"""limit_data: let ``bytes`` bytes through per connection and direction, then cut the rest and close.
The count survives updates of the toxic, so raising the limit lets more through on the same connection."""
from __future__ import annotations

import dataclasses

from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, Link, Toxic, register


@dataclasses.dataclass
class _Count:
    sent: int = 0


@register
@dataclasses.dataclass
class LimitData(Toxic):
    type_name = "limit_data"

    bytes: int = 0
    """Bytes allowed through before the connection is closed."""

    def new_state(self) -> _Count:
        return _Count()

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        count = link.state
        allowed = chunk.data[:max(self.bytes - count.sent, 0)]
        if allowed:
            count.sent += len(allowed)
            await emit(Chunk(allowed, chunk.stamp))
        if count.sent >= self.bytes:
            link.close_link()
