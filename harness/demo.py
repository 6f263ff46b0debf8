"""`rmqh demo`: one short recorded run on the embedded cluster, as named phases inside one exit stack.

up -> wait until every broker is registered everywhere -> samplers -> Locust headless -> down -> report.
Teardown runs in reverse order whatever happened (error, Ctrl-C), and the report is rendered from disk.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from chaos.engine import attach_run, backstop, detach_run
from cluster.local.cluster import LocalCluster
from cluster.topology import TopologySpec
from harness.errors import ClusterError, HarnessError
from harness.history import History
from harness.loadgen import LoadSpec, read_live_counts, start_headless
from harness.metrics.follow import StateFollower
from harness.metrics.process import ProcessSampler
from harness.metrics.system import SystemSampler
from harness.rundir import RunDir, create_run, finish_meta, new_meta, write_json_atomic, write_meta
from harness.state import ClusterState, default_state_dir
from harness.status import gather


@dataclass(frozen=True)
class DemoSpec:
    name: str = "demo"
    profile: str = "fast"
    topology: TopologySpec = field(default_factory=TopologySpec)
    load: LoadSpec = field(default_factory=LoadSpec)
    runs_root: Path = Path("runs")
    state_dir: Path = field(default_factory=default_state_dir)
    #: Toxiproxy in front of every link; None follows RMQH_PROXY (on unless "0").
    proxy: bool | None = None


def run_demo(spec: DemoSpec, console: Console) -> RunDir:
    spec.topology.validate()
    run = create_run(spec.name, spec.runs_root)
    write_meta(run, new_meta(run, seed=None, cluster={"backend": "local", "profile": spec.profile,
                                                        **asdict(spec.topology)}, load=asdict(spec.load)))
    console.print(f"run directory: [bold]{run.path}[/]")
    status = "failed"
    try:
        with History(run.history) as history, contextlib.ExitStack() as stack:
            history.record("run-started", name=spec.name)
            state = cluster_up(spec, run, history, stack, console)
            samplers = start_samplers(run, state, stack)
            run_load(spec, run, state, history, samplers[0], console)
            status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        finish_meta(run, status)  # type: ignore[arg-type]
        with History(run.history) as history:
            history.record("run-finished", status=status)
    render(run, console)
    return run


def cluster_up(spec: DemoSpec, run: RunDir, history: History, stack: contextlib.ExitStack,
               console: Console) -> ClusterState:
    cluster = LocalCluster(spec.state_dir)
    stack.callback(lambda: (cluster.down(), history.record("cluster-down")))
    with console.status("starting the embedded cluster") as status:
        state = cluster.up(spec.topology, spec.profile, parent_pid=os.getpid(),
                           progress=lambda text: status.update(text), proxy=spec.proxy)
        # Runs before cluster.down (the stack unwinds in reverse): faults end, and their windows close in
        # this run's history too.
        stack.callback(backstop, spec.state_dir, [history])
        attach_run(spec.state_dir, run.history)  # `rmqh chaos` during the run lands in its history too
        stack.callback(detach_run, spec.state_dir)
        if state.proxy is not None:
            history.record("net-ready", proxy=state.proxy.kind, proxies=len(state.links))
        status.update("waiting until every broker is registered with every NameServer")
        wait_registered(state, timeout=30.0)
    write_json_atomic(run.topology, asdict(state))
    history.record("cluster-ready", nodes=[n.node_id for n in state.nodes])
    console.print(f"cluster ready: {len(state.namesrv_addrs)} NameServers, {len(state.brokers)} brokers")
    return state


def wait_registered(state: ClusterState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    want = len(state.namesrv_addrs)
    while time.monotonic() < deadline:
        rows = gather(state)
        if all(len(r.registered_with) == want for r in rows if r.role == "broker"):
            return
        time.sleep(0.1)
    raise ClusterError(f"brokers not registered with all {want} NameServers within {timeout:.0f}s; "
                       f"see the node logs under {state.state_dir}/logs")


def start_samplers(run: RunDir, state: ClusterState,
                   stack: contextlib.ExitStack) -> tuple[StateFollower, SystemSampler]:
    process = ProcessSampler(run.process_csv)
    follower = StateFollower(process, Path(state.state_dir))  # follows restarts done by faults and heals
    system = SystemSampler(run.system_csv)
    for part in (process, follower, system):
        part.start()
        stack.callback(part.stop)
    return follower, system


def run_load(spec: DemoSpec, run: RunDir, state: ClusterState, history: History,
             sampler: StateFollower, console: Console) -> None:
    load = spec.load
    json_prefix = run.locust_json.with_suffix("")
    proc = start_headless(load, Path(state.state_dir), run.locust_prefix, run.locust_html, json_prefix,
                          run.locust_dir / "locust.log")
    history.record("load-started", producers=load.producers, consumers=load.consumers, duration=load.duration)
    sampler.set_extra({"locust": ("loadgen", proc.pid)})
    try:
        watch_load(proc, load, run, console)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        history.record("load-stopped", exit_code=proc.returncode)
    if proc.returncode not in (0, 1):  # 1 = some requests failed, which the report shows
        raise HarnessError(f"Locust exited with code {proc.returncode}; see {run.locust_dir / 'locust.log'}")


def watch_load(proc: subprocess.Popen[bytes], load: LoadSpec, run: RunDir, console: Console) -> None:
    columns = (TextColumn("[bold]load"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=load.duration)
        started = time.monotonic()
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            counts = read_live_counts(run.locust_stats_csv)
            rate = counts.sent / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=min(elapsed, load.duration),
                            description=f"sent {counts.sent:,} (~{rate:,.0f}/s)  consumed {counts.consumed:,}"
                                        f"  failed {counts.send_failures:,}")
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        progress.update(task, completed=load.duration)


def render(run: RunDir, console: Console) -> None:
    from reports.render import render_report

    path = render_report(run.path)
    console.print(f"report: [bold green]{path}[/]")
