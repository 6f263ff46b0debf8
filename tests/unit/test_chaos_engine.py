"""The fault life cycle with a fake cluster: effects, idempotent heals, rollbacks, backstops, history."""
from __future__ import annotations

from pathlib import Path

import pytest

from chaos.base import HealError, fault_class
from chaos.engine import Chaos, attach_run, detach_run
from harness.errors import ConfigError, HarnessError
from harness.history import read_history
from tests.chaos_fakes import FakeContext


def chaos(tmp_path: Path, ctx: FakeContext) -> Chaos:
    return Chaos(tmp_path, opener=lambda _dir: ctx)  # type: ignore[arg-type,return-value]


def events(tmp_path: Path) -> list[dict]:
    if not (tmp_path / "events.jsonl").exists():
        return []
    return [e for e in read_history(tmp_path / "events.jsonl") if e["event"].startswith("fault-")]


def test_inject_records_an_effect_that_another_process_can_heal(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    effect = chaos(tmp_path, ctx).inject("latency", ["broker-a-0"], {"latency": "100", "kind": "client"})
    assert set(ctx.toxics) == {("clients->broker-a-0", f"rmqh-{effect.fault_id}-downstream")}
    again = chaos(tmp_path, ctx)  # a second command: only the state dir is shared
    assert [e.fault_id for e in again.active()] == [effect.fault_id]
    again.heal(effect.fault_id)
    assert ctx.toxics == {} and again.active() == []
    inject, heal = events(tmp_path)
    assert (inject["event"], heal["event"]) == ("fault-inject", "fault-heal")
    for entry in (inject, heal):
        assert entry["fault"] == "latency" and entry["fault_id"] == effect.fault_id
        assert entry["targets"] == ["broker-a-0"] and entry["params"]["latency"] == 100
        assert entry["links"] == ["clients->broker-a-0"]


def test_heal_is_idempotent(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    effect = engine.inject("kill", ["broker-b-0"], {})
    fault = fault_class("kill")(effect.args, effect.params)
    fault.heal(ctx, effect)
    fault.heal(ctx, effect)  # the node runs already: nothing more happens
    assert [c for c in ctx.calls if c[0] == "start"] == [("start", "broker-b-0")]
    ctx.reset_links()
    engine.heal(effect.fault_id)  # the stored effect heals cleanly after a backstop too
    with pytest.raises(ConfigError, match="no active fault"):
        engine.heal(effect.fault_id)


def test_a_failed_inject_rolls_back_what_it_did_and_records_nothing(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    ctx.fail["add_toxic"] = 3  # the third of four toxics fails
    with pytest.raises(HarnessError, match="injected failure") as info:
        chaos(tmp_path, ctx).inject("partition-namesrv", ["ns-0"], {})
    assert ctx.toxics == {}
    removed = [c for c in ctx.calls if c[0] == "remove_toxic"]
    assert len(removed) == 3  # the failed add too: its answer may have been lost after the server applied it
    assert any("rolled back" in note for note in info.value.__notes__)
    assert chaos(tmp_path, ctx).active() == [] and events(tmp_path) == []


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    for name, args, params in (("latency", ["ns-0"], {"latency": "x"}), ("kill", ["ns-9"], {}),
                               ("nope", [], {}), ("kill-master", ["broker-q"], {})):
        with pytest.raises(ConfigError):
            chaos(tmp_path, ctx).inject(name, args, params)
    assert ctx.calls == [] and not (tmp_path / "events.jsonl").exists()


def test_heal_all_goes_newest_first_then_resets_every_proxy(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    first = engine.inject("pause", ["ns-0"], {})
    second = engine.inject("link-down", ["ns-1"], {"kind": "client"})
    ctx.paused.add("ns-2")  # paused behind the harness's back: the backstop resumes it anyway
    healed = engine.heal_all()
    assert [e.fault_id for e in healed] == [second.fault_id, first.fault_id]
    undo_calls = [c[0] for c in ctx.calls if c[0] in ("enable", "resume")]
    assert undo_calls == ["enable", "resume"]
    assert ctx.resets == 1 and ctx.paused == set() and engine.active() == []


def test_teardown_heals_without_restarting_and_drops_what_fails(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    engine.inject("kill-master", ["broker-a"], {})
    engine.inject("latency", ["ns-0"], {"latency": "5"})
    ctx.fail["remove_toxic"] = 1
    engine.heal_all(teardown=True)
    assert "broker-a-0" not in ctx.alive and engine.active() == []
    assert all(e.get("teardown") for e in events(tmp_path) if e["event"] == "fault-heal")


def test_a_failed_heal_keeps_the_fault_active_and_can_be_retried(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    effect = engine.inject("latency", ["ns-0", "ns-1"], {"latency": "5", "kind": "client"})
    ctx.fail["remove_toxic"] = 1
    with pytest.raises(HealError, match=f"heal of {effect.fault_id} incomplete: remove-toxic clients->ns-"):
        engine.heal(effect.fault_id)
    assert len(ctx.toxics) == 1 and [e.fault_id for e in engine.active()] == [effect.fault_id]
    engine.heal(effect.fault_id)
    assert ctx.toxics == {} and engine.active() == []


def test_start_settles_the_matching_part_of_active_kills(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    kill = engine.inject("kill-namesrv", ["ns-0", "ns-1"], {})
    engine.inject("start", ["ns-0"], {})
    (still,) = engine.active()
    assert still.fault_id == kill.fault_id and [r["node"] for r in still.undo] == ["ns-1"]
    engine.inject("start", ["ns-1"], {})
    assert engine.active() == []
    heals = [e for e in events(tmp_path) if e["event"] == "fault-heal" and e["fault_id"] == kill.fault_id]
    assert heals and heals[0]["by"].startswith("start-")


def test_instant_faults_are_never_active_but_leave_a_window(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    engine = chaos(tmp_path, ctx)
    engine.inject("restart", ["broker-a-0"], {})
    assert engine.active() == [] and "broker-a-0" in ctx.alive
    assert [e["event"] for e in events(tmp_path)] == ["fault-inject", "fault-heal"]
    assert ctx.closed == 1  # each operation opens and closes its own context


def test_faults_also_land_in_an_attached_runs_history(tmp_path: Path) -> None:
    ctx = FakeContext.of()
    run_history = tmp_path / "run" / "history.jsonl"
    attach_run(tmp_path, run_history)
    effect = chaos(tmp_path, ctx).inject("pause", ["ns-0"], {})
    detach_run(tmp_path)
    chaos(tmp_path, ctx).heal(effect.fault_id)
    in_run = read_history(run_history)
    assert [(e["event"], e["id"]) for e in in_run] == [("fault-inject", effect.fault_id)]
    assert [e["event"] for e in events(tmp_path)] == ["fault-inject", "fault-heal"]
