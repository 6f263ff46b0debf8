"""Running a fault's plan step by step, and undoing it.

Each step writes its undo record into the Effect *before* it acts: a step that fails or times out half-way
(a toxic the server did add although the answer was lost) is still undone. An inject that fails rolls
back what it did, in reverse, whatever the error (Ctrl-C included). Every undo is idempotent: it looks at
the present state (node running? toxic present?) so healing twice, or healing what a backstop already
reset, changes nothing.
"""
from __future__ import annotations

import logging
from typing import Any

from chaos.base import Effect, FaultContext, Plan, Step

logger = logging.getLogger(__name__)

START_NODE = "start-node"
RESUME_NODE = "resume-node"
REMOVE_TOXIC = "remove-toxic"
ENABLE_LINK = "enable-link"


def toxic_name(fault_id: str, stream: str) -> str:
    return f"rmqh-{fault_id}-{stream}"


def run_plan(ctx: FaultContext, plan: Plan, effect: Effect) -> None:
    try:
        for step in plan.steps:
            _run_step(ctx, step, effect)
    except BaseException as exc:
        errors = undo_effect(ctx, effect, teardown=False)
        exc.add_note(f"rolled back {effect.fault_id}" + (f"; rollback errors: {'; '.join(errors)}" if errors else ""))
        raise


def _run_step(ctx: FaultContext, step: Step, effect: Effect) -> None:
    if step.op in ("kill", "stop"):
        _note(effect, START_NODE, node=step.node)
        (ctx.kill_node if step.op == "kill" else ctx.stop_node)(step.node)
    elif step.op == "pause":
        _note(effect, RESUME_NODE, node=step.node)
        ctx.pause_node(step.node)
    elif step.op == "start":
        ctx.start_node(step.node)
    elif step.op == "resume":
        ctx.resume_node(step.node)
    elif step.op == "toxic":
        name = toxic_name(effect.fault_id, step.stream)
        _note(effect, REMOVE_TOXIC, link=step.link, toxic=name)
        ctx.add_toxic(step.link, name, step.toxic, step.stream, step.attributes)
    elif step.op == "disable":
        _note(effect, ENABLE_LINK, link=step.link)
        ctx.disable_link(step.link)
    else:
        raise ValueError(f"unknown step {step.op!r}")


def _note(effect: Effect, op: str, **fields: str) -> None:
    effect.undo.append({"op": op, **fields})


def undo_effect(ctx: FaultContext, effect: Effect, teardown: bool) -> list[str]:
    """Run every undo record in reverse; returns the errors (each naming its record) instead of stopping at
    the first, so one failure does not leave the rest of the fault in place."""
    errors = []
    for record in reversed(effect.undo):
        try:
            undo_record(ctx, record, teardown)
        except Exception as exc:  # collected and reported together by the caller
            errors.append(f"{describe(record)}: {exc}")
    return errors


def undo_record(ctx: FaultContext, record: dict[str, Any], teardown: bool) -> None:
    op = record["op"]
    if op == START_NODE:
        if teardown:
            logger.info("teardown: not restarting %s", record["node"])
        else:
            ctx.start_node(record["node"])
    elif op == RESUME_NODE:
        ctx.resume_node(record["node"])
    elif op == REMOVE_TOXIC:
        ctx.remove_toxic(record["link"], record["toxic"])
    elif op == ENABLE_LINK:
        ctx.enable_link(record["link"])
    else:
        raise ValueError(f"unknown undo record {op!r}")


def describe(record: dict[str, Any]) -> str:
    where = record.get("node") or record.get("link", "")
    return f"{record['op']} {where}".strip()


def settle(effect: Effect, op: str, node: str) -> bool:
    """Drop the undo records that an explicit action (``start``, ``resume``) has just done; True when the
    effect has nothing left to undo, i.e. it is healed."""
    effect.undo = [r for r in effect.undo if not (r["op"] == op and r.get("node") == node)]
    return not effect.undo
