"""pause NODE...: SIGSTOP. The node keeps its sockets open and answers nothing: peers see timeouts, not
closed connections (a GC pause or a hung host). Heal: SIGCONT."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class PauseNode(NodeFault):
    name = "pause"
    summary = "SIGSTOP nodes (frozen, sockets open); heal sends SIGCONT"
    ops = ("pause",)
    requires = frozenset({"process", "pause"})
