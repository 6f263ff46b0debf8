"""partition-leader GROUP: cut a group's master from its followers but not from clients or NameServers.

Its outgoing and incoming Raft peer links are black-holed: it cannot reach a quorum, so its appends time
out, while the followers elect a new leader among themselves. Clients still reach the old master until the
NameServer routes change. Needs a replicated group (peer links exist only with replicas > 1)."""
from __future__ import annotations

from chaos.base import Fault, FaultContext, Plan, TargetSpec, register
from chaos.faults._common import blackhole
from chaos.targets import group_members, resolve
from harness.errors import ConfigError, HarnessError


@register
class PartitionLeader(Fault):
    name = "partition-leader"
    summary = "black-hole a group master's Raft links (both ways), not its client links"
    target = TargetSpec("group")
    requires = frozenset({"proxy", "routes"})

    def plan(self, ctx: FaultContext) -> Plan:
        group = resolve(ctx, self.target, self.args, self.name)[0]
        links = [link for link in ctx.links() if link.kind == "peer-link" and link.to_node in group_members(ctx, group)]
        if not links:
            raise ConfigError(f"{self.name}: {group} has no peer links (it runs with a single replica)")
        leader = ctx.master_of(group)
        if leader is None:
            raise HarnessError(f"{self.name}: no NameServer lists a master (brokerId 0) for {group} right now")
        cut = [link for link in links if leader in (link.from_node, link.to_node)]
        followers = tuple(dict.fromkeys(e for link in cut for e in (link.from_node, link.to_node) if e != leader))
        return Plan((leader,) + followers, blackhole(cut))
