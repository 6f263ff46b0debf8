"""`rmqh`: the thin command layer. Each command parses options, calls one function, prints with rich."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from cluster.local.cluster import LocalCluster
from cluster.topology import DEFAULT_TOPIC, TopologySpec
from harness.chaos_cli import chaos_app
from harness.click_compat import ABORTS, CLICK_ERRORS, EXITS
from harness.errors import HarnessError
from harness.loadgen import LoadSpec, locust_env, web_ui_command
from harness.state import default_state_dir, load_state

if TYPE_CHECKING:
    from harness.status import NodeStatus

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Chaos and pressure testing for RocketMQ-style clusters.")
console = Console()
err_console = Console(stderr=True)

PROXY_HELP = "a Toxiproxy proxy in front of every link (needed by network faults); default: on unless RMQH_PROXY=0"
PROFILE_HELP = "timing profile: 'default' (RocketMQ's own timers) or 'fast' (every timer / 10)"


def _topology(namesrv: int, groups: int, replicas: int, topic: str, queues: int) -> TopologySpec:
    return TopologySpec(namesrv_count=namesrv, group_count=groups, replicas=replicas, topic=topic,
                        queues_per_group=queues)


@app.command()
def up(namesrv: int = typer.Option(3, help="number of NameServers"),
       groups: int = typer.Option(2, help="number of broker groups"),
       replicas: int = typer.Option(3, help="replicas per broker group (1..5): 1 master + N-1 slaves, "
                                           "a Raft group (DLedger) when > 1"),
       topic: str = typer.Option(DEFAULT_TOPIC, help="topic created on every group"),
       queues: int = typer.Option(4, help="queues of the topic per group"),
       profile: str = typer.Option("default", help=PROFILE_HELP),
       proxy: Optional[bool] = typer.Option(None, "--proxy/--no-proxy", help=PROXY_HELP)) -> None:
    """Start the embedded cluster (nodes keep running until `rmqh down`)."""
    cluster = LocalCluster(default_state_dir())
    with console.status("starting") as status:
        state = cluster.up(_topology(namesrv, groups, replicas, topic, queues), profile,
                           progress=lambda text: status.update(text), proxy=proxy)
    console.print(f"[green]cluster up[/]: {len(state.nodes)} nodes; state in {state.path}")
    _print_status()


@app.command()
def status() -> None:
    """Show every node: role, address, pid, liveness, and where each broker is registered."""
    _print_status()


def _print_status() -> None:
    from harness.status import gather

    state = load_state(default_state_dir())
    rows = gather(state)
    _print_nodes(state.cluster_name, state.profile, rows)
    _print_raft(rows)


def _print_nodes(cluster_name: str, profile: str, rows: list[NodeStatus]) -> None:
    table = Table(title=f"cluster {cluster_name} ({profile} timing)")
    for column in ("node", "role", "group", "address", "pid", "alive", "registered with"):
        table.add_column(column)
    ns_total = sum(1 for r in rows if r.role == "namesrv")
    for row in rows:
        alive = "[green]yes[/]" if row.alive else "[red]no[/]"
        if row.role == "broker":
            role = f"broker ({row.broker_role})"
            reg = ", ".join(f"{ns}:id {bid}" for ns, bid in sorted(row.registered_with.items())) or "[red]none[/]"
            reg = f"{len(row.registered_with)}/{ns_total}  {reg}"
        else:
            role, reg = "namesrv", (f"[red]{row.error}[/]" if row.error else "")
        table.add_row(row.node_id, role, row.group or "-", row.addr, str(row.pid), alive, reg)
    console.print(table)


def _print_raft(rows: list[NodeStatus]) -> None:
    """Replicated groups: the leader and term of each, and every replica's Raft role and indexes."""
    from harness.status import raft_groups

    groups = raft_groups(rows)
    if not groups:
        return
    table = Table(title="replication (raft, read from each broker's own address)")
    for column in ("group", "leader / term", "replica", "raft id", "raft role", "term", "commit", "applied",
                   "last", "peers connected"):
        table.add_column(column)
    for group in groups:
        leader = f"{group.leader or '[red]none[/]'} / {group.term}"
        for n, row in enumerate(group.replicas):
            r = row.raft
            if not r:
                cells = [f"[red]{row.raft_error or 'no raft state'}[/]"] + [""] * 6
            else:
                cells = [r.get("raftSelfId", "?"), r.get("raftRole", "?"), r.get("raftTerm", "?"),
                         r.get("raftCommitIndex", "?"), r.get("raftAppliedIndex", "?"), r.get("raftLastIndex", "?"),
                         r.get("raftPeersConnected", "") or "-"]
            table.add_row(group.group if n == 0 else "", leader if n == 0 else "", row.node_id, *cells)
    console.print(table)


@app.command()
def down() -> None:
    """Stop every node of the cluster, also ones a killed harness left behind."""
    cluster = LocalCluster(default_state_dir())
    with console.status("stopping") as status:
        stopped = cluster.down(progress=lambda text: status.update(text))
    left = cluster.live_pids()
    if left:
        raise HarnessError(f"processes still running after down: {left}")
    console.print(f"[green]cluster down[/]: {stopped} node process(es) stopped")


@app.command()
def demo(duration: float = typer.Option(20.0, help="seconds of load"),
         namesrv: int = typer.Option(3, help="number of NameServers"),
         groups: int = typer.Option(2, help="number of broker groups"),
         replicas: int = typer.Option(3, help="replicas per broker group (1..5)"),
         producers: int = typer.Option(4, help="producer users"),
         consumers: int = typer.Option(2, help="consumer users"),
         size: int = typer.Option(1024, help="message body size in bytes"),
         rate: float = typer.Option(0.0, help="sends/s per producer user (0 = unthrottled)"),
         window: int = typer.Option(8, help="async sends in flight per producer task"),
         profile: str = typer.Option("fast", help=PROFILE_HELP),
         name: str = typer.Option("demo", help="run name (runs/<name>/<time>/)"),
         runs: Path = typer.Option(Path("runs"), help="root folder of run directories"),
         proxy: Optional[bool] = typer.Option(None, "--proxy/--no-proxy", help=PROXY_HELP)) -> None:
    """Up, Locust headless for a short time, sample every node, down, and write report.html."""
    from harness.demo import DemoSpec, run_demo

    load = LoadSpec(duration=duration, producers=producers, consumers=consumers, message_size=size,
                    producer_rate=rate, send_window=window)
    _check_load(load)
    topology = _topology(namesrv, groups, replicas, load.topic, 4)
    run_demo(DemoSpec(name=name, profile=profile, topology=topology, load=load, runs_root=runs, proxy=proxy), console)


def _check_load(load: LoadSpec) -> None:
    errors = []
    if load.duration <= 0:
        errors.append(f"--duration: {load.duration} must be > 0")
    if load.producers < 0 or load.consumers < 0 or load.users == 0:
        errors.append("--producers/--consumers: need at least one user, none negative")
    if not 0 <= load.message_size <= 4 * 1024 * 1024:
        errors.append(f"--size: {load.message_size} is outside 0..4194304 (the broker's maxMessageSize)")
    if load.producer_rate < 0:
        errors.append(f"--rate: {load.producer_rate} must be >= 0")
    if not 1 <= load.send_window <= 1024:
        errors.append(f"--window: {load.send_window} is outside 1..1024")
    if errors:
        from harness.errors import ConfigError

        raise ConfigError("invalid load options:\n  " + "\n  ".join(errors))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def locust(ctx: typer.Context,
           port: int = typer.Option(8089, help="web UI port (bound to 127.0.0.1)"),
           producers: int = typer.Option(4, help="default producer users in the UI form"),
           consumers: int = typer.Option(1, help="consumer users"),
           window: int = typer.Option(8, help="async sends in flight per producer task")) -> None:
    """Open Locust's web UI against the running cluster; extra arguments go to locust."""
    state = load_state(default_state_dir())
    spec = LoadSpec(producers=producers, consumers=consumers, send_window=window, topic=state.topic or DEFAULT_TOPIC)
    console.print(f"Locust web UI on [bold]http://127.0.0.1:{port}[/] (Ctrl-C to stop)")
    cmd = web_ui_command(spec, Path(state.state_dir), "127.0.0.1", port, list(ctx.args))
    raise typer.Exit(subprocess.call(cmd, env=locust_env(Path(state.state_dir))))


@app.command()
def report(run: str = typer.Argument("latest", help="run directory, run name, or 'latest'"),
           runs: Path = typer.Option(Path("runs"), help="root folder of run directories")) -> None:
    """Render report.html again from a run directory."""
    from harness.rundir import find_run
    from reports.render import render_report

    path = render_report(find_run(run, runs).path)
    console.print(f"report: [bold green]{path}[/]")


app.add_typer(chaos_app, name="chaos")


def main() -> None:
    # standalone_mode=False lets our own handlers see Ctrl-C and HarnessError instead of click's "Aborted!".
    try:
        code = app(standalone_mode=False)
    except CLICK_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except HarnessError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(exc.exit_code)
    except EXITS as exc:
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except ABORTS:
        err_console.print("[yellow]interrupted[/]; everything started was stopped")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
