"""Report and sampler costs: prints figures, asserts nothing.

1. Render the report of a synthetic one-hour run (3600 s, 11 nodes, SEND/PULL/CONSUME stats with a
   per-second latency history, three fault windows): wall time of reading and of rendering, peak Python
   memory (tracemalloc, a separate pass because tracing slows everything down), size of report.html.
2. The process sampler's cost per sweep over 11 live processes, and the system sampler's per sweep
   (CPU time of this process, so other load on the machine does not count).

    .venv/bin/python benchmarks/bench_report.py [--seconds 3600] [--sweeps 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from plotly.offline import get_plotlyjs

from harness.metrics.process import ProcessSampler
from harness.metrics.system import SystemSampler
from harness.rundir import RunDir
from reports.render import render_html, render_report
from reports.series import load_run
from reports.synthetic import SyntheticFault, write_synthetic_run


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def bench_report(root: Path, seconds: int) -> None:
    faults = [SyntheticFault("kill-master", ("broker-a-0",), seconds * 0.25, seconds * 0.25 + 60),
              SyntheticFault("partition-namesrv", ("ns-0", "ns-1"), seconds * 0.5, seconds * 0.5 + 120),
              SyntheticFault("latency", ("broker-b-0",), seconds * 0.8, None)]
    gen_s, run = timed(lambda: write_synthetic_run(root, "bench", seconds=seconds, nodes=11, faults=faults))
    assert isinstance(run, RunDir)
    inputs = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    load_s, data = timed(lambda: load_run(run))
    render_s, path = timed(lambda: render_report(run))
    size = Path(str(path)).stat().st_size
    tracemalloc.start()
    render_html(load_run(run))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"report, synthetic {seconds} s run, 11 nodes, 3 request types ({inputs / 2**20:.1f} MiB of inputs)")
    print(f"  write synthetic run   {gen_s:6.2f} s")
    print(f"  load_run              {load_s:6.2f} s")
    print(f"  render_report (total) {render_s:6.2f} s   (includes load_run)")
    print(f"  peak Python memory    {peak / 2**20:6.1f} MiB (tracemalloc, load + render)")
    print(f"  report.html           {size / 2**20:6.2f} MiB (of which plotly.js {len(get_plotlyjs()) / 2**20:.2f} MiB)")


def _per_sweep(sample: Callable[[], object], sweeps: int) -> tuple[list[float], list[float]]:
    sample()  # priming sweep (cpu baselines, first open of the csv)
    wall, cpu = [], []
    for _ in range(sweeps):
        w, c = time.perf_counter(), time.process_time()
        sample()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


def _fmt(label: str, wall: list[float], cpu: list[float]) -> str:
    q = statistics.quantiles(wall, n=100)
    return (f"  {label:28s} wall median {statistics.median(wall) * 1e3:5.2f} ms, p99 {q[98] * 1e3:5.2f} ms; "
            f"cpu mean {statistics.fmean(cpu) * 1e3:5.2f} ms = {statistics.fmean(cpu) * 100:.2f} % of a core at 1 Hz")


def bench_sampler(root: Path, sweeps: int) -> None:
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(11)]
    try:
        nodes = {f"node-{i}": ("broker", p.pid) for i, p in enumerate(children)}
        proc = ProcessSampler(root / "process.csv", nodes)
        system = SystemSampler(root / "system.csv")
        try:
            print(f"samplers, {sweeps} sweeps each, {os.cpu_count()} CPUs")
            print(_fmt("process sweep (11 procs)", *_per_sweep(proc.sample_once, sweeps)))
            print(_fmt("system sweep", *_per_sweep(system.sample_once, sweeps)))
        finally:
            proc.stop()
            system.stop()
    finally:
        for p in children:
            p.kill()
            p.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--sweeps", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rmqh-bench-") as tmp:
        bench_report(Path(tmp), args.seconds)
        bench_sampler(Path(tmp), args.sweeps)


if __name__ == "__main__":
    main()
