"""timeout: a black hole. All data is dropped; with ``timeout`` > 0 the connection is closed that many ms
after the toxic starts on it (even with no traffic). Removing the toxic closes the connections it held,
as Toxiproxy does, since whatever they sent meanwhile is lost."""
from __future__ import annotations

import dataclasses

from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, Link, Toxic, register


@register
@dataclasses.dataclass
class Timeout(Toxic):
    type_name = "timeout"

    timeout: int = 0
    """Milliseconds until the connection is closed; 0 keeps it open (silently) forever."""

    def on_start(self, link: Link) -> None:
        if self.timeout > 0:
            link.call_later(self.timeout / 1000.0, link.close_link)

    def on_removed(self, link: Link) -> None:
        link.close_link()

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        return  # dropped
