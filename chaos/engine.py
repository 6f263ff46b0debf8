"""Inject, heal, heal everything: the fault life cycle over the store, a context and the event history.

Each operation is one store transaction with a freshly opened context. Every inject and heal is appended
to the cluster's ``events.jsonl`` (and to any extra history, such as a run's) as ``fault-inject`` /
``fault-heal`` with ``fault``, ``fault_id``, ``targets`` (node ids), ``params``, ``args`` and ``links``:
the report shades fault windows from exactly these events.

Backstops: :meth:`Chaos.heal_all` heals every active fault (newest first, collecting errors), then resets
every proxy (Toxiproxy POST /reset) and resumes any paused node, so even a fault whose record was lost
ends. It runs on ``rmqh chaos heal --all``, at ``rmqh down``, and in the demo's exit stack.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from chaos.base import Effect, FaultContext, HealError, build_fault, fault_class
from chaos.execute import RESUME_NODE, START_NODE, settle
from chaos.store import ActiveFaults, FaultStore
from harness.history import FAULT_HEAL, FAULT_INJECT, History
from harness.state import events_path

logger = logging.getLogger(__name__)


class EngineContext(FaultContext, Protocol):
    """A FaultContext the engine can open, close and use for its backstops."""

    def close(self) -> None: ...

    def reset_links(self) -> None: ...

    def resume_all(self) -> list[str]: ...


Opener = Callable[[Path], EngineContext]


def _open_local(state_dir: Path) -> EngineContext:
    from chaos.context import LocalContext

    return LocalContext.open(state_dir)


class Chaos:
    def __init__(self, state_dir: Path, opener: Opener = _open_local, histories: Sequence[History] = ()) -> None:
        self.state_dir = Path(state_dir)
        self.store = FaultStore(self.state_dir)
        self._open = opener
        self._histories = list(histories)

    def inject(self, name: str, args: Sequence[str], raw_params: Mapping[str, object]) -> Effect:
        """Validate, then inject; an action (start, resume) also settles what it healed of active faults."""
        fault = build_fault(name, args, raw_params)  # bad names and parameters fail before anything
        with self._session() as (faults, ctx):
            effect = fault.inject(ctx, faults.new_id(name))
            self._record(FAULT_INJECT, effect)
            if fault.mode == "lasting":
                faults.active.append(effect)
            else:
                self._record(FAULT_HEAL, effect, mode=fault.mode)
            if fault.mode == "action":
                self._settle(faults, effect)
        return effect

    def heal(self, fault_id: str) -> Effect:
        with self._session() as (faults, ctx):
            effect = faults.find(fault_id)
            self._heal_one(ctx, faults, effect, teardown=False)
        return effect

    def heal_all(self, teardown: bool = False) -> list[Effect]:
        """Heal every active fault, newest first, then the backstops. ``teardown``: the cluster is being
        stopped, so killed nodes are not restarted and a failed heal is dropped (logged) rather than kept."""
        errors: list[str] = []
        with self._session() as (faults, ctx):
            healed = []
            for effect in reversed(list(faults.active)):
                try:
                    self._heal_one(ctx, faults, effect, teardown)
                    healed.append(effect)
                except Exception as exc:  # the others must still be healed
                    errors.append(str(exc))
                    if teardown:
                        faults.remove(effect.fault_id)
            errors += self._backstops(ctx)
        if errors and not teardown:
            raise HealError("; ".join(errors))
        for error in errors:
            logger.warning("heal at teardown: %s", error)
        return healed

    def active(self) -> list[Effect]:
        return self.store.read().active

    def _heal_one(self, ctx: FaultContext, faults: ActiveFaults, effect: Effect, teardown: bool) -> None:
        fault_class(effect.fault)(effect.args, effect.params).heal(ctx, effect, teardown)
        faults.remove(effect.fault_id)
        self._record(FAULT_HEAL, effect, **({"teardown": True} if teardown else {}))

    def _backstops(self, ctx: EngineContext) -> list[str]:
        errors = []
        if "proxy" in ctx.abilities:
            try:
                ctx.reset_links()
            except Exception as exc:
                errors.append(f"proxy reset: {exc}")
        try:
            resumed = ctx.resume_all()
            if resumed:
                logger.warning("backstop resumed paused nodes no fault record knew of: %s", resumed)
        except Exception as exc:
            errors.append(f"resuming paused nodes: {exc}")
        return errors

    def _settle(self, faults: ActiveFaults, action: Effect) -> None:
        op = START_NODE if action.fault == "start" else RESUME_NODE
        for effect in list(faults.active):
            if any(settle(effect, op, node) for node in action.targets):
                faults.remove(effect.fault_id)
                self._record(FAULT_HEAL, effect, by=action.fault_id)

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[ActiveFaults, EngineContext]]:
        with self.store.transaction() as faults:
            ctx = self._open(self.state_dir)
            try:
                yield faults, ctx
            finally:
                ctx.close()

    def _record(self, event: str, effect: Effect, **extra: Any) -> None:
        # ``id`` as well: the report pairs an inject with its heal by it when both carry one.
        fields = {"fault": effect.fault, "fault_id": effect.fault_id, "id": effect.fault_id,
                  "targets": effect.targets, "params": effect.params, "args": effect.args, "links": effect.links,
                  **extra}
        paths = [events_path(self.state_dir)] + ([run] if (run := attached_run(self.state_dir)) else [])
        for path in paths:
            with History(path) as history:
                history.record(event, **fields)
        for other in self._histories:
            other.record(event, **fields)


def attach_run(state_dir: Path, history_path: Path) -> None:
    """While a run (``rmqh demo``) drives this cluster, faults injected by any command are also appended to
    the run's history, so its report shades them."""
    _run_marker(state_dir).write_text(str(history_path))


def detach_run(state_dir: Path) -> None:
    _run_marker(state_dir).unlink(missing_ok=True)


def attached_run(state_dir: Path) -> Path | None:
    try:
        text = _run_marker(state_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None


def _run_marker(state_dir: Path) -> Path:
    return Path(state_dir) / "run-history"


def heal_all(state_dir: Path, teardown: bool = False, histories: Sequence[History] = ()) -> list[Effect]:
    return Chaos(state_dir, histories=histories).heal_all(teardown)


def backstop(state_dir: Path, histories: Sequence[History] = ()) -> None:
    """Heal everything before the cluster stops (``rmqh down``, the demo's exit stack). Never raises: a
    teardown must go on; what failed is logged."""
    try:
        heal_all(state_dir, teardown=True, histories=histories)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning("healing active faults before teardown failed: %s", exc)
