"""kill-master GROUP: SIGKILL the current master of a broker group.

The master is whoever the NameServers list as brokerId 0 of the group, asked directly on their own ports
(not through the proxies, so a NameServer partition cannot hide it). With replicas the group elects a new
master; a single-replica group has none until the heal starts the node again."""
from __future__ import annotations

from chaos.base import Fault, FaultContext, Plan, Step, TargetSpec, register
from chaos.targets import require_running, resolve
from harness.errors import HarnessError


@register
class KillMaster(Fault):
    name = "kill-master"
    summary = "SIGKILL the current master of a broker group; heal restarts it"
    target = TargetSpec("group")
    requires = frozenset({"process", "routes"})

    def plan(self, ctx: FaultContext) -> Plan:
        group = resolve(ctx, self.target, self.args, self.name)[0]
        master = ctx.master_of(group)
        if master is None:
            raise HarnessError(f"{self.name}: no NameServer lists a master (brokerId 0) for {group} right now")
        require_running(ctx, [master], self.name)
        return Plan((master,), (Step("kill", node=master),))
