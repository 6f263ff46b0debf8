"""stop NODE...: SIGTERM and wait (a clean shutdown: a broker unregisters, flushes and closes). Heal:
start it again."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class StopNode(NodeFault):
    name = "stop"
    summary = "SIGTERM nodes (clean shutdown); heal starts them"
    ops = ("stop",)
