"""Building blocks shared by the faults: process faults on named nodes, black holes, link selection."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from chaos.base import Fault, FaultContext, Plan, Step, StepOp, TargetSpec
from chaos.params import Param
from chaos.targets import (ALL, ANY_KIND, check_selectors, require_running, resolve, running_only, select_links,
                           streams)
from harness.errors import ConfigError
from harness.state import LinkState


class NodeFault(Fault):
    """A signal-level fault on one or more named nodes (``all`` = every running node)."""

    target = TargetSpec("node", many=True, allow_all=True)
    requires = frozenset({"process"})
    #: The steps run for each node, in order.
    ops: ClassVar[tuple[StepOp, ...]] = ()
    #: The node must be running first (kill, stop, pause); start and resume act on any node.
    needs_running: ClassVar[bool] = True

    def plan(self, ctx: FaultContext) -> Plan:
        nodes = resolve(ctx, self.target, self.args, self.name)
        if self.needs_running:
            nodes = running_only(ctx, nodes, self.name) if ALL in self.args else nodes
            require_running(ctx, nodes, self.name)
        return Plan(tuple(nodes), tuple(Step(op, node=n) for n in nodes for op in self.ops))


def blackhole(links: Iterable[LinkState]) -> tuple[Step, ...]:
    """A silent partition: Toxiproxy's timeout toxic with timeout 0 on both directions drops every byte
    and never closes the connection, so peers see requests time out rather than a refused connect (which
    would make clients fail over at once and hide the timeouts a real network partition causes)."""
    return tuple(Step("toxic", link=link.name, toxic="timeout", stream=stream, attributes={"timeout": 0})
                 for link in links for stream in ("upstream", "downstream"))


def only_links(links: Sequence[LinkState], what: str) -> Sequence[LinkState]:
    if not links:
        raise ConfigError(f"{what}: no link matches; see the links with `rmqh chaos links`")
    return links


SELECTOR_PARAMS = (
    Param("kind", str, "link kind", "any", choices=(ANY_KIND, "client", "ns-link", "peer-link")),
    Param("from", str, "only links from this node ('clients' for client links)", ""),
    Param("to", str, "only links to this node", ""),
)


def stream_param(default: str = "downstream") -> Param:
    return Param("stream", str, "upstream = towards the node, downstream = its answers", default,
                 choices=("upstream", "downstream", "both"))


class LinkFault(Fault):
    """A toxic on the selected links: links touching the named nodes (``all``: every link), narrowed by
    --kind, --from and --to, on --stream (upstream = towards the node, downstream = its answers)."""

    target = TargetSpec("link-node", many=True, allow_all=True, optional=True)
    requires = frozenset({"proxy"})
    toxic: ClassVar[str] = ""

    def attributes(self) -> dict[str, int]:
        raise NotImplementedError

    def selected(self, ctx: FaultContext) -> list[LinkState]:
        kind, src, dst = str(self.values["kind"]), str(self.values["from"]), str(self.values["to"])
        if not self.args and kind == ANY_KIND and not src and not dst:
            raise ConfigError(f"{self.name}: name nodes, 'all', or select links with --kind/--from/--to")
        nodes = resolve(ctx, self.target, self.args, self.name)
        check_selectors(ctx, kind, src, dst)
        chosen = select_links(ctx.links(), () if ALL in self.args else nodes, kind, src, dst)
        return list(only_links(chosen, self.name))

    def plan(self, ctx: FaultContext) -> Plan:
        links = self.selected(ctx)
        steps = tuple(self.step(link, stream) for link in links for stream in streams(str(self.values["stream"])))
        return Plan(link_nodes(links), steps)

    def step(self, link: LinkState, stream: str) -> Step:
        return Step("toxic", link=link.name, toxic=self.toxic, stream=stream, attributes=self.attributes())


def link_nodes(links: Iterable[LinkState]) -> tuple[str, ...]:
    """The cluster nodes at either end of the links (the pseudo node 'clients' left out)."""
    from cluster.links import CLIENTS

    ends = (end for link in links for end in (link.from_node, link.to_node))
    return tuple(dict.fromkeys(e for e in ends if e != CLIENTS))
