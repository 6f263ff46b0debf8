"""start NODE...: start stopped or killed nodes from their saved configs (a running node is left alone).
An action: it also settles the 'start' part of active kill/stop faults on those nodes."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class StartNode(NodeFault):
    name = "start"
    summary = "start nodes again from their saved configs"
    ops = ("start",)
    mode = "action"
    needs_running = False
