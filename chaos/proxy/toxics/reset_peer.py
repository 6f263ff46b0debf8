"""reset_peer: when the first chunk (or the end of stream) arrives, wait ``timeout`` ms, then close the
connection abruptly, dropping that chunk and everything after it. As in Toxiproxy, the close is a TCP RST
only on connections accepted while a reset_peer toxic existed (SO_LINGER 0 is set at accept); on older
connections it is a plain FIN."""
from __future__ import annotations

import dataclasses

from chaos.proxy.stream import Chunk
from chaos.proxy.toxics.base import Emit, EmitEof, Link, Toxic, register


@dataclasses.dataclass
class _Trigger:
    fired: bool = False


@register
@dataclasses.dataclass
class ResetPeer(Toxic):
    type_name = "reset_peer"

    timeout: int = 0
    """Milliseconds between the first data and the reset."""

    def new_state(self) -> _Trigger:
        return _Trigger()

    def on_start(self, link: Link) -> None:
        link.state.fired = False  # a restarted toxic waits for data again, as in Toxiproxy

    def _fire(self, link: Link) -> None:
        if not link.state.fired:
            link.state.fired = True
            link.call_later(max(self.timeout, 0) / 1000.0, link.reset_link)

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        self._fire(link)

    async def pipe_eof(self, link: Link, emit_eof: EmitEof) -> None:
        self._fire(link)
