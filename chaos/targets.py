"""Turning what the user named (nodes, groups, ``all``, link selectors) into concrete nodes and links.

Every unknown name is refused with the valid choices listed, before anything is changed.
"""
from __future__ import annotations

from collections.abc import Sequence

from chaos.base import FaultContext, TargetKind, TargetSpec
from cluster.links import CLIENTS, LINK_KINDS
from harness.errors import ConfigError, HarnessError
from harness.state import LinkState

ALL = "all"
ANY_KIND = "any"


def candidates(ctx: FaultContext, kind: TargetKind) -> list[str]:
    nodes = ctx.nodes()
    if kind == "group":
        return sorted({n.group for n in nodes if n.role == "broker" and n.group})
    if kind in ("namesrv", "broker"):
        return [n.node_id for n in nodes if n.role == kind]
    if kind == "link-node":
        return [CLIENTS] + [n.node_id for n in nodes]
    return [n.node_id for n in nodes] if kind == "node" else []


def resolve(ctx: FaultContext, spec: TargetSpec, args: Sequence[str], what: str) -> list[str]:
    """The named targets, each checked against the cluster; ``all`` is every candidate."""
    valid = candidates(ctx, spec.kind)
    if spec.allow_all and ALL in args:
        if len(args) > 1:
            raise ConfigError(f"{what}: 'all' cannot be combined with other targets")
        return valid
    unknown = [a for a in args if a not in valid]
    if unknown:
        choices = ", ".join(valid + ([ALL] if spec.allow_all else []))
        raise ConfigError(f"{what}: unknown {spec.kind} {', '.join(map(repr, unknown))}; choose from {choices}")
    return list(dict.fromkeys(args))


def require_running(ctx: FaultContext, node_ids: Sequence[str], what: str) -> None:
    down = [n for n in node_ids if not ctx.node_alive(n)]
    if down:
        raise HarnessError(f"{what}: {', '.join(down)} not running (start it with `rmqh chaos start`)")


def running_only(ctx: FaultContext, node_ids: Sequence[str], what: str) -> list[str]:
    """For ``all``: the running ones, and an error if none is."""
    alive = [n for n in node_ids if ctx.node_alive(n)]
    if not alive:
        raise HarnessError(f"{what}: none of {', '.join(node_ids)} is running")
    return alive


def group_members(ctx: FaultContext, group: str) -> list[str]:
    return [n.node_id for n in ctx.nodes() if n.role == "broker" and n.group == group]


def check_selectors(ctx: FaultContext, kind: str, from_node: str, to_node: str) -> None:
    errors = []
    if kind != ANY_KIND and kind not in LINK_KINDS:
        errors.append(f"--kind: {kind!r} is not one of {', '.join((ANY_KIND, *LINK_KINDS))}")
    valid = candidates(ctx, "link-node")
    for flag, value in (("--from", from_node), ("--to", to_node)):
        if value and value not in valid:
            errors.append(f"{flag}: unknown node {value!r}; choose from {', '.join(valid)}")
    if errors:
        raise ConfigError("; ".join(errors))


def select_links(links: Sequence[LinkState], nodes: Sequence[str] = (), kind: str = ANY_KIND,
                 from_node: str = "", to_node: str = "") -> list[LinkState]:
    """Links touching any of ``nodes`` (either end; none named = every link), of ``kind``, and with the
    given ends. Pure: the link faults and their tests share it."""
    return [link for link in links
            if (not nodes or link.from_node in nodes or link.to_node in nodes)
            and (kind == ANY_KIND or link.kind == kind)
            and (not from_node or link.from_node == from_node)
            and (not to_node or link.to_node == to_node)]


def links_between(links: Sequence[LinkState], sources: Sequence[str], sinks: Sequence[str],
                  kind: str) -> list[LinkState]:
    """Links of ``kind`` from any of ``sources`` to any of ``sinks``."""
    return [link for link in links
            if link.kind == kind and link.from_node in sources and link.to_node in sinks]


def streams(choice: str) -> tuple[str, ...]:
    return ("upstream", "downstream") if choice == "both" else (choice,)
