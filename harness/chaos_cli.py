"""`rmqh chaos ...`: list, inject, heal and inspect faults on the running cluster; verify the proxy plane.

Every fault of the registry is a sub-command of its own (``rmqh chaos kill-master broker-a``). Its options
are the fault's parameters, parsed and validated by the fault's schema (not by click), so an error names
the parameter and the valid choices, exits 2, and changes nothing.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from chaos.base import Effect, Fault, fault_class, registry
from chaos.engine import Chaos
from chaos.params import split_cli_params
from harness.errors import ConfigError, HarnessError
from harness.state import default_state_dir, load_state

console = Console()
COMMANDS = ("list", "links", "status", "heal", "heal-all", "verify")


class ChaosGroup(TyperGroup):
    """An unknown sub-command is answered with every fault and command (exit 2), not just 'No such command';
    usage errors of sub-commands (``--for abc``) leave as click errors that rmqh's main() shows (exit 2)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            raise click.UsageError(f"unknown fault {args[0]!r}; faults are {', '.join(registry())}; "
                                   f"other commands: {', '.join(COMMANDS)}", ctx)
        return super().resolve_command(ctx, args)


chaos_app = typer.Typer(cls=ChaosGroup, no_args_is_help=True, add_completion=False,
                        help="Inject and heal faults on the running cluster (`rmqh chaos list` shows them).")


@chaos_app.command("list")
def list_faults() -> None:
    """Every fault with its targets and parameters."""
    table = Table(title=escape("faults: rmqh chaos FAULT [targets] [--param value ...] [--for SECONDS]"))
    for column in ("fault", "targets", "parameters", "what it does"):
        table.add_column(column)
    for name, cls in registry().items():
        params = "\n".join(f"{p.flag}: {p.describe()}" for p in cls.params) or "-"
        table.add_row(name, escape(cls.target.usage or "-"), escape(params), f"{escape(cls.summary)} [dim]({cls.mode})[/]")
    console.print(table)


@chaos_app.command("links")
def list_links() -> None:
    """Every proxy of the link plan: who dials whom, where it listens, and its toxics right now."""
    from chaos.toxiproxy import ToxiproxyClient

    state = load_state(default_state_dir())
    if state.proxy is None:
        raise HarnessError("this cluster runs without proxies (--no-proxy or RMQH_PROXY=0)")
    table = Table(title=f"links ({state.proxy.kind} Toxiproxy on {state.proxy.api})")
    for column in ("link", "kind", "listen", "upstream", "toxics"):
        table.add_column(column)
    with ToxiproxyClient(state.proxy.host, state.proxy.port, timeout=5.0) as client:
        for link in state.links:
            toxics = ", ".join(f"{t.type}/{t.stream}" for t in client.toxics(link.name)) or "-"
            table.add_row(link.name, link.kind, link.listen, link.upstream, toxics)
    console.print(table)


@chaos_app.command("status")
def status() -> None:
    """Active faults: id, targets, parameters and age."""
    active = Chaos(default_state_dir()).active()
    if not active:
        console.print("no active faults")
        return
    table = Table(title="active faults")
    for column in ("id", "fault", "targets", "parameters", "age"):
        table.add_column(column)
    now = time.time()
    for effect in active:
        params = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in effect.params.items() if v != "")
        table.add_row(effect.fault_id, effect.fault, ", ".join(effect.targets), params or "-",
                      f"{now - effect.injected_at:.0f}s")
    console.print(table)


@chaos_app.command("heal")
def heal(fault_id: Optional[str] = typer.Argument(None, help="id from `rmqh chaos status`"),
         all_: bool = typer.Option(False, "--all", help="heal every active fault, then reset every proxy")) -> None:
    """Heal one active fault, or all of them (idempotent)."""
    if all_ == (fault_id is not None):
        raise ConfigError("heal: give a fault id or --all (not both)")
    if all_:
        heal_all()
        return
    effect = Chaos(default_state_dir()).heal(str(fault_id))
    console.print(f"[green]healed[/] {effect.fault_id} ({', '.join(effect.targets)})")


@chaos_app.command("heal-all")
def heal_all() -> None:
    """Heal every active fault, reset every proxy and resume paused nodes."""
    healed = Chaos(default_state_dir()).heal_all()
    names = ", ".join(e.fault_id for e in healed) or "no active faults"
    console.print(f"[green]healed[/] {names}; proxies reset")


@chaos_app.command("verify")
def verify() -> None:
    """Check that every connection each node accepted came through its proxy (exit 1 if not)."""
    from chaos.toxiproxy import ToxiproxyClient
    from chaos.verify import verify as run_verify

    state = load_state(default_state_dir())
    if state.proxy is None:
        raise HarnessError("this cluster runs without proxies (--no-proxy or RMQH_PROXY=0): nothing to verify")
    with ToxiproxyClient(state.proxy.host, state.proxy.port, timeout=5.0) as client:
        report = run_verify(state, client)
    total = sum(report.proxied.values())
    console.print(f"{len(report.nodes_checked)} nodes, {report.proxies_checked} proxies: "
                  f"{total} accepted connections came through their proxies")
    for conn in report.bypasses:
        console.print(f"[red]bypass[/]: {conn.node_id} port {conn.port} accepted {conn.remote} directly")
    for wrong in report.misrouted:
        console.print(f"[red]misrouted[/]: {wrong.accepted.node_id} accepted {wrong.accepted.remote} via {wrong.link}")
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]verified[/]: no connection bypassed a proxy")


def run_fault(name: str, tokens: list[str], duration: float | None) -> Effect:
    targets, params = split_cli_params(tokens)
    if duration is not None and (duration <= 0 or fault_class(name).mode != "lasting"):
        raise ConfigError(f"--for: needs a positive number of seconds and a lasting fault ({name} is "
                          f"{fault_class(name).mode})")
    chaos = Chaos(default_state_dir())
    effect = chaos.inject(name, targets, params)
    links = f"; {len(effect.links)} link(s)" if effect.links else ""
    console.print(f"[yellow]injected[/] {effect.fault_id}: {name} on {', '.join(effect.targets)}{links}")
    if duration is not None:
        try:
            countdown(effect, duration)
        finally:  # Ctrl-C included: a timed fault never outlives its command
            _heal_quietly(chaos, effect)
    return effect


def countdown(effect: Effect, seconds: float) -> None:
    columns = (TextColumn(f"[bold]{effect.fault_id}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=seconds)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            progress.update(task, completed=elapsed)
            time.sleep(min(0.2, seconds - elapsed))


def _heal_quietly(chaos: Chaos, effect: Effect) -> None:
    try:
        chaos.heal(effect.fault_id)
        console.print(f"[green]healed[/] {effect.fault_id}")
    except ConfigError:  # already healed by another command
        console.print(f"{effect.fault_id} was already healed")


def _fault_help(cls: type[Fault]) -> str:
    params = "\n\n".join(f"{p.flag}: {p.help} ({p.describe()})" for p in cls.params)
    doc = sys.modules[cls.__module__].__doc__ or cls.summary
    return f"{doc}\n\nTargets: {cls.target.usage or 'none'}\n\n{params}".strip()


def _add_fault_command(name: str, cls: type[Fault]) -> None:
    def command(ctx: typer.Context,
                for_: Optional[float] = typer.Option(None, "--for", metavar="SECONDS",
                                                     help="heal on its own after this long (also on Ctrl-C)")) -> None:
        run_fault(name, list(ctx.args), for_)

    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    chaos_app.command(name, help=_fault_help(cls), short_help=cls.summary, context_settings=settings)(command)


for _name, _cls in registry().items():
    _add_fault_command(_name, _cls)
