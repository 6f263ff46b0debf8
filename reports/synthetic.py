"""A synthetic run directory, written with the harness's own writers, for tests, benchmarks and demos.

It imitates a steady load with optional fault windows (TPS dips and latency rises inside them, the
targets' metrics stop) so the report has something realistic to draw without a cluster. Deterministic
for a given seed.
"""
from __future__ import annotations

import csv
import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.history import History
from harness.metrics.process import PROCESS_HEADER
from harness.metrics.system import SYSTEM_HEADER
from harness.rundir import RunDir, create_run, finish_meta, new_meta, write_json_atomic, write_meta

_T0 = 1_790_000_000.0  # a fixed start keeps outputs byte-identical between runs of the same seed
_MIB = 1024 * 1024


@dataclass(frozen=True)
class SyntheticFault:
    fault: str
    targets: tuple[str, ...]
    start: float
    end: float | None
    """None: never healed."""


def node_plan(count: int) -> list[tuple[str, str, str]]:
    """(node id, role, group): three NameServers, then broker groups of three (master first)."""
    plan = [(f"ns-{i}", "namesrv", "") for i in range(min(3, count))]
    for i in range(count - len(plan)):
        group = f"broker-{chr(ord('a') + i // 3)}"
        plan.append((f"{group}-{i % 3}", "master" if i % 3 == 0 else "slave", group))
    return plan


def write_synthetic_run(root: Path, name: str = "synthetic", seconds: int = 120, nodes: int = 11,
                        tps: float = 2000.0, faults: Sequence[SyntheticFault] = (),
                        seed: int = 7, history_csv: bool = True) -> RunDir:
    """Create ``<root>/<name>/<stamp>/`` with every file a finished run has (report.html excepted)."""
    rng = random.Random(seed)
    run = create_run(name, root, now=_T0)
    plan = node_plan(nodes)
    load = (_T0 + 5, _T0 + 5 + seconds)
    meta = new_meta(run, seed=seed, cluster={"nodes": len(plan), "groups": len({g for *_, g in plan if g})},
                    load={"users": 50, "tps": tps, "seconds": seconds}, started=_T0)
    write_meta(run, meta)
    _write_history(run, load, faults)
    write_json_atomic(run.topology, {"nodes": [
        {"id": n, "role": r, "group": g, "addr": f"127.0.0.{i + 2}:9876", "pid": 1000 + i}
        for i, (n, r, g) in enumerate(plan)]})
    _write_metrics(run, plan, load, faults, rng)
    _write_locust(run, load, tps, faults, rng, history_csv)
    finish_meta(run, "completed", finished=load[1] + 5)
    return run


def _in_fault(t: float, faults: Sequence[SyntheticFault], node: str | None = None) -> bool:
    return any(f.start <= t - _T0 < (f.end if f.end is not None else math.inf)
               and (node is None or node in f.targets) for f in faults)


def _write_history(run: RunDir, load: tuple[float, float], faults: Sequence[SyntheticFault]) -> None:
    steps: list[tuple[float, str, dict[str, Any]]] = [
        (_T0, "run-started", {}), (_T0 + 3, "cluster-ready", {}), (load[0], "load-started", {}),
        (load[1], "load-stopped", {}), (load[1] + 4, "cluster-down", {}), (load[1] + 5, "run-finished", {})]
    for f in faults:
        steps.append((_T0 + f.start, "fault-inject", {"fault": f.fault, "targets": list(f.targets)}))
        if f.end is not None:
            steps.append((_T0 + f.end, "fault-heal", {"fault": f.fault, "targets": list(f.targets)}))
    steps.sort(key=lambda s: s[0])
    clock = iter([s[0] for s in steps])
    now = [0.0]

    def tick() -> float:
        now[0] = next(clock)
        return now[0]

    with History(run.history, clock=tick, mono=lambda: now[0] - _T0 + 1000.0) as history:
        for _, event, fields in steps:
            history.record(event, **fields)


def _write_metrics(run: RunDir, plan: list[tuple[str, str, str]], load: tuple[float, float],
                   faults: Sequence[SyntheticFault], rng: random.Random) -> None:
    with run.process_csv.open("w", newline="") as pf, run.system_csv.open("w", newline="") as sf:
        proc, system = csv.writer(pf), csv.writer(sf)
        proc.writerow(PROCESS_HEADER)
        system.writerow(SYSTEM_HEADER)
        rss = {n: (60 if r == "namesrv" else 180) * _MIB for n, r, _ in plan}
        for sec in range(int(load[1] - _T0) + 5):
            ts = _T0 + sec + 0.25
            busy = load[0] <= ts < load[1]
            for i, (node, role, _) in enumerate(plan):
                if _in_fault(ts, faults, node):
                    continue
                cpu = (8 if role == "namesrv" else 70 if role == "master" else 35) * (1 if busy else 0.1)
                rss[node] += rng.randint(-40_000, 60_000) if busy else 0
                proc.writerow([round(ts, 3), node, role, 1000 + i, round(max(0.0, rng.gauss(cpu, cpu / 8)), 1),
                               rss[node], 12, 0, sec * 400_000 if role != "namesrv" else 0, sec * 90,
                               (sec * 2 * _MIB) if role != "namesrv" and busy else 0])
            load_factor = 0.8 if busy else 0.05
            system.writerow([round(ts, 3), round(min(100.0, rng.gauss(60 * load_factor, 3) + 2), 1),
                             int((6 + 2 * load_factor) * 1024 * _MIB), int(16 * 1024 * _MIB),
                             round(rng.uniform(0, 2e5), 1), round(rng.gauss(30e6 * load_factor, 1e6), 1),
                             round(rng.gauss(80e6 * load_factor, 2e6), 1), round(rng.gauss(80e6 * load_factor, 2e6), 1),
                             round(2.0 * load_factor + 0.2, 2)])


def locust_round(ms: float) -> int:
    """Two significant digits, the bucketing Locust's histograms use."""
    if ms < 100:
        return int(round(ms))
    digits = int(math.floor(math.log10(ms))) - 1
    return int(round(ms / 10 ** digits) * 10 ** digits)


_KINDS = (("SEND", 4.0, 0.004), ("PULL", 2.0, 0.0), ("CONSUME", 12.0, 0.0))


def _write_locust(run: RunDir, load: tuple[float, float], tps: float, faults: Sequence[SyntheticFault],
                  rng: random.Random, history_csv: bool) -> None:
    entries, history_rows = [], []
    for kind, median_ms, fail_ratio in _KINDS:
        entry, rows = _locust_entry(kind, median_ms, fail_ratio, load, tps, faults, rng)
        entries.append(entry)
        history_rows += rows
    run.locust_json.write_text(json.dumps(entries, indent=4))
    if history_csv:
        _write_history_csv(run, sorted(history_rows, key=lambda r: (r[0], r[2])))


def _locust_entry(kind: str, median_ms: float, fail_ratio: float, load: tuple[float, float], tps: float,
                  faults: Sequence[SyntheticFault], rng: random.Random) -> tuple[dict[str, Any], list[list[Any]]]:
    per_sec: dict[int, int] = {}
    fails: dict[int, int] = {}
    hist: dict[int, int] = defaultdict(int)
    total_rt, max_rt, rows = 0.0, 0.0, []
    for sec in range(int(load[0]), int(load[1])):
        hurt = _in_fault(sec, faults)
        count = max(0, int(rng.gauss(tps * (0.3 if hurt else 1.0), tps * 0.03)))
        sample = sorted(rng.lognormvariate(math.log(median_ms * (6 if hurt else 1)), 0.6) for _ in range(40))
        for ms in sample:  # 40 draws stand for the second's `count` requests
            hist[locust_round(ms)] += max(1, count // len(sample))
        per_sec[sec] = count
        fails[sec] = int(count * (fail_ratio * (20 if hurt else 1)))
        total_rt += count * sum(sample) / len(sample)
        max_rt = max(max_rt, sample[-1])
        rows.append([sec, 50, kind, "TopicTest", count, fails[sec], *_window_percentiles(sample)])
    entry = {"name": "TopicTest", "method": kind, "last_request_timestamp": load[1], "start_time": load[0],
             "num_requests": sum(per_sec.values()), "num_none_requests": 0, "num_failures": sum(fails.values()),
             "total_response_time": total_rt, "max_response_time": max_rt, "min_response_time": 0.1,
             "total_content_length": 0, "response_times": {str(k): v for k, v in sorted(hist.items())},
             "num_reqs_per_sec": {str(k): v for k, v in per_sec.items()},
             "num_fail_per_sec": {str(k): v for k, v in fails.items() if v}}
    return entry, rows


_PCTS = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


def _window_percentiles(sample: list[float]) -> list[int]:
    return [locust_round(sample[min(len(sample) - 1, int(q * len(sample)))]) for q in _PCTS]


def _write_history_csv(run: RunDir, rows: list[list[Any]]) -> None:
    header = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%", "80%",
              "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count",
              "Total Failure Count", "Total Median Response Time", "Total Average Response Time",
              "Total Min Response Time", "Total Max Response Time", "Total Average Content Size"]
    with run.locust_history_csv.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        for r in rows:
            out.writerow([*r, 0, 0, 0, 0, 0, 0, 0])
