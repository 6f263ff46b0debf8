"""kill-namesrv NAMESRV... | all: SIGKILL NameServers. With all of them gone, running clients keep
sending on the routes they cached; new clients cannot start. Heal: start them again (brokers re-register
within one registration period)."""
from __future__ import annotations

from chaos.base import TargetSpec, register
from chaos.faults._common import NodeFault


@register
class KillNamesrv(NodeFault):
    name = "kill-namesrv"
    summary = "SIGKILL one, several or all NameServers; heal restarts them"
    target = TargetSpec("namesrv", many=True, allow_all=True)
    ops = ("kill",)
