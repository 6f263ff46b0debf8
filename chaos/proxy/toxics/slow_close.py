"""slow_close: hold the end of the stream back for ``delay`` ms; data still flows normally."""
from __future__ import annotations

import dataclasses

from chaos.proxy.toxics.base import EmitEof, Link, Toxic, register


@register
@dataclasses.dataclass
class SlowClose(Toxic):
    type_name = "slow_close"

    delay: int = 0
    """Milliseconds between the source's end of stream and passing it on."""

    async def pipe_eof(self, link: Link, emit_eof: EmitEof) -> None:
        await link.sleep(self.delay / 1000.0)
        await emit_eof()
