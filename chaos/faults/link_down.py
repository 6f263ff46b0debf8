"""link-down [NODE... | all]: disable the selected proxies: open connections close at once (EOF) and new
ones are refused. Unlike a black hole, callers learn of the failure immediately. Heal: enable them."""
from __future__ import annotations

from chaos.base import FaultContext, Plan, Step, register
from chaos.faults._common import SELECTOR_PARAMS, LinkFault, link_nodes


@register
class LinkDown(LinkFault):
    name = "link-down"
    summary = "disable the selected proxies (connections closed, new ones refused)"
    params = SELECTOR_PARAMS

    def plan(self, ctx: FaultContext) -> Plan:
        links = self.selected(ctx)
        return Plan(link_nodes(links), tuple(Step("disable", link=link.name) for link in links))
