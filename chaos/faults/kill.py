"""kill NODE...: SIGKILL, no goodbye (open connections are reset by the kernel; NameServers drop a killed
broker at once because its connections close). Heal: start it again from its saved config."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import NodeFault


@register
class KillNode(NodeFault):
    name = "kill"
    summary = "SIGKILL nodes; heal restarts them"
    ops = ("kill",)
