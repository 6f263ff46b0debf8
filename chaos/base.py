"""What a fault is: a name, typed parameters, a target, required abilities, and a plan of steps.

Terms:

- **Fault**: a class registered by a kebab-case name (``kill-master``); one instance per use, built from the
  positional targets (``args``) and validated parameters. ``plan(ctx)`` looks at the cluster and returns the
  steps it would take, changing nothing; ``inject(ctx)`` runs them (``chaos.execute``) and returns an Effect.
- **Step**: one change (kill a node, add a toxic to a link, ...). Each step notes its undo *before* it runs,
  so an inject that fails half-way rolls back exactly what it did, and a timed-out API call is still undone.
- **Effect**: the serialisable record of one injection (fault, id, targets, params, undo records). It is
  all a heal needs, so another process (``rmqh chaos heal``) can heal it from the cluster's state dir.
- **Ability**: what a cluster backend can do (``process``, ``pause``, ``proxy``, ``routes``). A fault that
  requires one the cluster lacks (toxics without proxies) is refused before anything changes.
- **Mode**: ``lasting`` faults stay until healed; ``instant`` ones (restart) end on their own; ``action``
  ones (start, resume) also settle the matching undo records of active faults.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from chaos.params import Param, ParamValue, parse_params
from harness.errors import ConfigError, HarnessError
from harness.state import LinkState, NodeState

Ability = Literal["process", "pause", "proxy", "routes"]
Mode = Literal["lasting", "instant", "action"]
StepOp = Literal["kill", "stop", "start", "pause", "resume", "toxic", "disable"]
TargetKind = Literal["none", "node", "namesrv", "broker", "group", "link-node"]
STREAMS = ("upstream", "downstream")


class FaultContext(Protocol):
    """The cluster as faults see it; ``chaos.context.LocalContext`` is the real one, tests use fakes."""

    abilities: frozenset[str]

    def nodes(self) -> list[NodeState]: ...

    def links(self) -> list[LinkState]: ...

    def node_alive(self, node_id: str) -> bool: ...

    def master_of(self, group: str) -> str | None: ...

    def kill_node(self, node_id: str) -> None: ...

    def stop_node(self, node_id: str) -> None: ...

    def start_node(self, node_id: str) -> None: ...

    def pause_node(self, node_id: str) -> None: ...

    def resume_node(self, node_id: str) -> None: ...

    def add_toxic(self, link: str, name: str, type: str, stream: str, attributes: Mapping[str, int]) -> None: ...

    def remove_toxic(self, link: str, name: str) -> None: ...

    def disable_link(self, link: str) -> None: ...

    def enable_link(self, link: str) -> None: ...


@dataclass(frozen=True)
class Step:
    op: StepOp
    node: str = ""
    link: str = ""
    toxic: str = ""
    stream: str = ""
    attributes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    #: Node ids the fault acts on (what the history's ``targets`` and the report's shading show).
    targets: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.link for s in self.steps if s.link))


@dataclass
class Effect:
    fault: str
    fault_id: str
    args: list[str]
    targets: list[str]
    params: dict[str, ParamValue]
    links: list[str] = field(default_factory=list)
    #: Undo records in the order their steps ran; a heal runs them in reverse.
    undo: list[dict[str, Any]] = field(default_factory=list)
    injected_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Effect:
        return cls(**dict(raw))


@dataclass(frozen=True)
class TargetSpec:
    kind: TargetKind
    #: Several targets allowed (else exactly one).
    many: bool = False
    #: ``all`` stands for every candidate (for node kinds: every one that is running).
    allow_all: bool = False
    #: No target at all is fine (link faults may select by --kind/--from/--to instead).
    optional: bool = False

    @property
    def usage(self) -> str:
        label = {"none": "", "node": "NODE", "namesrv": "NAMESRV", "broker": "BROKER", "group": "GROUP",
                 "link-node": "NODE"}[self.kind]
        if not label:
            return ""
        text = label + ("..." if self.many else "") + (" | all" if self.allow_all else "")
        return f"[{text}]" if self.optional else text


class HealError(HarnessError):
    """Some undo records of a heal failed; each message names the step. The fault stays active."""


class Fault:
    """Base of every fault; subclasses set the class attributes and implement :meth:`plan`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    target: ClassVar[TargetSpec] = TargetSpec("none", optional=True)
    requires: ClassVar[frozenset[str]] = frozenset()
    mode: ClassVar[Mode] = "lasting"

    def __init__(self, args: Sequence[str], params: Mapping[str, ParamValue]) -> None:
        self.args = list(args)
        self.values = dict(params)

    @classmethod
    def build(cls, args: Sequence[str], raw_params: Mapping[str, object]) -> Fault:
        """Validate the parameters (every error names its parameter) and the target count."""
        _check_arity(cls.name, cls.target, args)
        return cls(args, parse_params(cls.params, raw_params))

    def check_abilities(self, ctx: FaultContext) -> None:
        missing = sorted(self.requires - ctx.abilities)
        if missing:
            hint = " (this cluster runs without proxies: --no-proxy or RMQH_PROXY=0)" if "proxy" in missing else ""
            raise ConfigError(f"{self.name} needs {', '.join(missing)}, which this cluster lacks{hint}")

    def plan(self, ctx: FaultContext) -> Plan:
        """The steps this fault would take now; raises ConfigError (naming the valid choices) for targets
        the cluster does not have, and HarnessError when the cluster's state does not allow it."""
        raise NotImplementedError

    def inject(self, ctx: FaultContext, fault_id: str) -> Effect:
        from chaos.execute import run_plan

        self.check_abilities(ctx)
        plan = self.plan(ctx)
        effect = Effect(self.name, fault_id, self.args, list(plan.targets), dict(self.values), list(plan.links))
        run_plan(ctx, plan, effect)
        return effect

    def heal(self, ctx: FaultContext, effect: Effect, teardown: bool = False) -> None:
        """Idempotent: every undo record checks the present state first. ``teardown`` (the cluster is about
        to stop) skips restarting nodes."""
        from chaos.execute import undo_effect

        errors = undo_effect(ctx, effect, teardown)
        if errors:
            raise HealError(f"heal of {effect.fault_id} incomplete: " + "; ".join(errors))


def _check_arity(name: str, spec: TargetSpec, args: Sequence[str]) -> None:
    if spec.kind == "none" and args:
        raise ConfigError(f"{name} takes no targets, got {' '.join(args)}")
    if not args and not spec.optional and spec.kind != "none":
        raise ConfigError(f"{name} needs a target: {spec.usage}")
    if len(args) > 1 and not spec.many:
        raise ConfigError(f"{name} takes one target ({spec.usage}), got {' '.join(args)}")


_REGISTRY: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator: make a fault available by its name."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"fault name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Fault]]:
    """Every registered fault by name (importing ``chaos.faults`` registers the built-in ones)."""
    importlib.import_module("chaos.faults")
    return dict(sorted(_REGISTRY.items()))


def fault_class(name: str) -> type[Fault]:
    faults = registry()
    try:
        return faults[name]
    except KeyError:
        raise ConfigError(f"unknown fault {name!r}; faults are {', '.join(faults)}") from None


def build_fault(name: str, args: Sequence[str], raw_params: Mapping[str, object]) -> Fault:
    return fault_class(name).build(args, raw_params)
