"""restart NODE...: SIGTERM, wait, start again from the saved config, one node after the other. Instant:
it is healed when the nodes are back."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class RestartNode(NodeFault):
    name = "restart"
    summary = "stop nodes and start them again at once"
    ops = ("stop", "start")
    mode = "instant"
