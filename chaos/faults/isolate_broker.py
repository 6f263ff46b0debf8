"""isolate-broker BROKER: black-hole every link of one broker replica: clients -> it, its NameServer links,
and its Raft peer links in both directions. Clients' sends to it time out (and retry on another group);
NameServers drop it after the expiry; its group's other replicas stop hearing from it."""
from __future__ import annotations

from chaos.base import Fault, FaultContext, Plan, TargetSpec, register
from chaos.faults._common import blackhole
from chaos.targets import resolve, select_links


@register
class IsolateBroker(Fault):
    name = "isolate-broker"
    summary = "black-hole every link of a broker (clients, NameServers, peers)"
    target = TargetSpec("broker")
    requires = frozenset({"proxy"})

    def plan(self, ctx: FaultContext) -> Plan:
        broker = resolve(ctx, self.target, self.args, self.name)[0]
        links = select_links(ctx.links(), [broker])
        return Plan((broker,), blackhole(links))
