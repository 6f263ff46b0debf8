"""partition-namesrv NAMESRV... | all [--side brokers|clients|both]: black-hole NameServers.

brokers: every broker->NameServer link of those NameServers; the brokers' registrations time out, and each
NameServer drops them after its expiry (120 s; fast profile 12 s) while clients still read its routes.
clients: their client links; route lookups time out and clients fail over to another NameServer.
A black hole (timeout toxic, timeout 0) and not a refused connection; the heal closes the held
connections, and brokers reconnect and register again at their next period."""
from __future__ import annotations

from chaos.base import Fault, FaultContext, Plan, TargetSpec, register
from chaos.faults._common import blackhole, link_nodes, only_links
from chaos.params import Param
from chaos.targets import resolve
from cluster.links import CLIENTS


@register
class PartitionNamesrv(Fault):
    name = "partition-namesrv"
    summary = "black-hole NameServers from brokers, clients or both"
    target = TargetSpec("namesrv", many=True, allow_all=True)
    params = (Param("side", str, "who loses the NameServers", "brokers", choices=("brokers", "clients", "both")),)
    requires = frozenset({"proxy"})

    def plan(self, ctx: FaultContext) -> Plan:
        namesrvs = resolve(ctx, self.target, self.args, self.name)
        side = self.values["side"]
        links = [link for link in ctx.links() if link.to_node in namesrvs and (
            (side in ("brokers", "both") and link.kind == "ns-link")
            or (side in ("clients", "both") and link.kind == "client" and link.from_node == CLIENTS))]
        links = list(only_links(links, self.name))
        return Plan(tuple(namesrvs) + tuple(n for n in link_nodes(links) if n not in namesrvs), blackhole(links))
