"""resume NODE...: SIGCONT. An action: it also settles active pause faults on those nodes."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class ResumeNode(NodeFault):
    name = "resume"
    summary = "SIGCONT paused nodes"
    ops = ("resume",)
    requires = frozenset({"process", "pause"})
    mode = "action"
    needs_running = False
