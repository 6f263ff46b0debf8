"""Read a run directory into plain per-second series for the report (no pandas, no plotting here).

Every time axis is *relative seconds since the run started* (the history's ``run-started``, else
meta.json's ``started_utc``, else the earliest timestamp found), so all charts share one axis.
Absent inputs are not errors: the matching field stays empty and a sentence lands in ``RunData.missing``.
"""
from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.history import FAULT_HEAL, FAULT_INJECT, HistoryError, read_history
from harness.rundir import RunDir, parse_iso_utc, read_meta
from reports.latency import LatencyRow, latency_rows, latency_windows, num

logger = logging.getLogger(__name__)

SEND, PULL, CONSUME = "SEND", "PULL", "CONSUME"
"""Locust request types the load uses: producer send, pull RPC, end-to-end consume latency."""


@dataclass
class Series:
    """A time series: ``t`` in seconds since run start, ``v`` with None where there is no value."""

    t: list[float] = field(default_factory=list)
    v: list[float | None] = field(default_factory=list)

    def add(self, t: float, v: float | None) -> None:
        self.t.append(t)
        self.v.append(v)

    def values(self) -> list[float]:
        return [x for x in self.v if x is not None]

    def with_gaps(self, factor: float = 2.5) -> Series:
        """A copy with a None point inside every pause longer than ``factor`` times the usual sample
        spacing, so a chart breaks the line where a node was down instead of bridging it."""
        steps = sorted(b - a for a, b in zip(self.t, self.t[1:]))
        if not steps:
            return self
        limit = factor * steps[len(steps) // 2]
        if limit <= 0:
            return self
        out = Series()
        for i, (t, v) in enumerate(zip(self.t, self.v)):
            if i and t - self.t[i - 1] > limit:
                out.add(self.t[i - 1] + limit / factor, None)
            out.add(t, v)
        return out


@dataclass(frozen=True)
class FaultWindow:
    fault: str
    targets: tuple[str, ...]
    start: float
    end: float
    healed: bool
    """False when the history has no heal for it: the window then runs to the end of the run."""


@dataclass(frozen=True)
class Mark:
    """A phase event drawn as a vertical line."""

    t: float
    event: str


@dataclass(frozen=True)
class Totals:
    sent: int
    acked: int
    failed: int
    consumed: int
    load_seconds: float
    mean_tps: float | None
    peak_tps: float | None
    mean_consume_tps: float | None
    peak_consume_tps: float | None


@dataclass
class RunData:
    """Everything the report shows, read once from the run directory."""

    run: RunDir
    meta: dict[str, Any]
    t0: float
    duration: float
    events: list[dict[str, Any]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    rates: dict[str, Series] = field(default_factory=dict)
    """``sent`` (attempts), ``acked``, ``failed``, ``consumed``, ``pull`` per second."""
    latency: list[LatencyRow] = field(default_factory=list)
    latency_windows: dict[str, dict[str, Series]] = field(default_factory=dict)
    """request type -> percentile label -> series, from Locust's ~10 s "current" window."""
    node_cpu: dict[str, Series] = field(default_factory=dict)
    node_rss: dict[str, Series] = field(default_factory=dict)
    #: RSS minus resident file-backed pages (the mapped commit log): the memory a node really holds.
    node_anon: dict[str, Series] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    system: dict[str, Series] = field(default_factory=dict)
    totals: Totals | None = None
    missing: list[str] = field(default_factory=list)


def load_run(run: RunDir) -> RunData:
    """Read every input of ``run`` that exists."""
    meta = read_meta(run)
    events = _read_events(run)
    stats = _read_locust_json(run)
    process_rows = _read_csv(run.process_csv)
    system_rows = _read_csv(run.system_csv)
    t0, t_end = _time_span(meta, events, stats, process_rows, system_rows)
    data = RunData(run=run, meta=meta, t0=t0, duration=max(0.0, t_end - t0))
    _fill_events(data, events)
    _fill_locust(data, stats, _read_csv(run.locust_history_csv))
    _fill_processes(data, process_rows)
    _fill_system(data, system_rows)
    _note_missing(data, events, stats, process_rows, system_rows)
    return data


# -- reading -------------------------------------------------------------------------------------------
def _read_events(run: RunDir) -> list[dict[str, Any]]:
    try:
        return [e for e in read_history(run.history) if isinstance(e.get("ts"), (int, float))]
    except FileNotFoundError:
        return []
    except HistoryError as exc:
        logger.warning("%s", exc)
        return []


def _read_locust_json(run: RunDir) -> list[dict[str, Any]]:
    try:
        data = json.loads(run.locust_json.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            logger.warning("%s: unreadable: %s", run.locust_json, exc)
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _time_span(meta: dict[str, Any], events: list[dict[str, Any]], stats: list[dict[str, Any]],
               *tables: list[dict[str, str]]) -> tuple[float, float]:
    stamps = [float(e["ts"]) for e in events]
    for entry in stats:
        stamps += [float(s) for s in entry.get("num_reqs_per_sec", {})]
    for rows in tables:
        stamps += [x for x in (num(r.get("ts")) for r in rows) if x is not None]
    start = _event_ts(events, "run-started") or parse_iso_utc(meta.get("started_utc"))
    end = _event_ts(events, "run-finished") or parse_iso_utc(meta.get("finished_utc"))
    start = start if start is not None else min(stamps, default=0.0)
    end = max([end or start, *stamps])
    return start, end


def _event_ts(events: list[dict[str, Any]], name: str) -> float | None:
    return next((float(e["ts"]) for e in events if e.get("event") == name), None)


# -- history -------------------------------------------------------------------------------------------
def _fill_events(data: RunData, events: list[dict[str, Any]]) -> None:
    data.events = [{**e, "t": round(float(e["ts"]) - data.t0, 3)} for e in events]
    data.marks = [Mark(e["t"], str(e["event"])) for e in data.events
                  if e["event"] not in (FAULT_INJECT, FAULT_HEAL)]
    data.faults = fault_windows(data.events, data.duration)


def fault_windows(events: list[dict[str, Any]], end: float) -> list[FaultWindow]:
    """Pair each ``fault-inject`` with its ``fault-heal`` (by ``id`` when both carry one, else by fault
    name and targets, first in first out). An inject never healed lasts until ``end``; a heal without
    an inject is ignored. Events need a relative time ``t``. Sorted by start."""
    open_: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    windows: list[FaultWindow] = []
    for e in events:
        if e.get("event") == FAULT_INJECT:
            open_[_fault_key(e)].append(e)
        elif e.get("event") == FAULT_HEAL and open_.get(_fault_key(e)):
            windows.append(_window(open_[_fault_key(e)].pop(0), e["t"], healed=True))
    windows += [_window(e, max(end, e["t"]), healed=False) for pending in open_.values() for e in pending]
    return sorted(windows, key=lambda w: (w.start, w.fault))


def _fault_key(e: dict[str, Any]) -> Any:
    if e.get("id") is not None:
        return ("id", str(e["id"]))
    return str(e.get("fault", "?")), _targets(e)


def _targets(e: dict[str, Any]) -> tuple[str, ...]:
    targets = e.get("targets") or ()
    return tuple(sorted(str(t) for t in ([targets] if isinstance(targets, str) else targets)))


def _window(inject: dict[str, Any], end: float, healed: bool) -> FaultWindow:
    return FaultWindow(str(inject.get("fault", "?")), _targets(inject), inject["t"], end, healed)


# -- locust --------------------------------------------------------------------------------------------
def _fill_locust(data: RunData, stats: list[dict[str, Any]], history: list[dict[str, str]]) -> None:
    if not stats:
        return
    sent, failed = _per_second(stats, SEND, "num_reqs_per_sec"), _per_second(stats, SEND, "num_fail_per_sec")
    consumed, pull = _per_second(stats, CONSUME, "num_reqs_per_sec"), _per_second(stats, PULL, "num_reqs_per_sec")
    seconds = sorted({*sent, *failed, *consumed, *pull})
    if seconds:
        # Every second of the load gets a point, zero included: an outage must show as a drop to zero,
        # not as a straight line drawn across the gap.
        span = range(int(seconds[0]), int(seconds[-1]) + 1)
        acked = {s: sent.get(s, 0) - failed.get(s, 0) for s in span}
        for key, counts in (("sent", sent), ("acked", acked), ("failed", failed),
                            ("consumed", consumed), ("pull", pull)):
            data.rates[key] = _dense(counts, span, data.t0)
    data.latency = latency_rows(stats)
    data.latency_windows = {k: {p: _series(pts, data.t0) for p, pts in v.items()}
                            for k, v in latency_windows(history).items()}
    data.totals = _totals(stats, data, seconds)


def _per_second(stats: list[dict[str, Any]], method: str, key: str) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for entry in stats:
        if entry.get("method") == method:
            for sec, count in (entry.get(key) or {}).items():
                out[int(float(sec))] += int(count)
    return out


def _dense(counts: dict[int, int], span: range, t0: float) -> Series:
    return Series([round(s - t0, 3) for s in span], [float(counts.get(s, 0)) for s in span])


def _series(points: list[tuple[float, float | None]], t0: float) -> Series:
    return Series([round(t - t0, 3) for t, _ in points], [v for _, v in points])


def _totals(stats: list[dict[str, Any]], data: RunData, seconds: list[int]) -> Totals:
    def count(method: str, key: str) -> int:
        return sum(int(e.get(key) or 0) for e in stats if e.get("method") == method)

    sent, failed, consumed = count(SEND, "num_requests"), count(SEND, "num_failures"), count(CONSUME, "num_requests")
    load_seconds = _load_seconds(data, seconds)
    acked_rate, consume_rate = data.rates.get("acked", Series()), data.rates.get("consumed", Series())
    return Totals(
        sent=sent, acked=sent - failed, failed=failed, consumed=consumed, load_seconds=load_seconds,
        mean_tps=(sent - failed) / load_seconds if load_seconds else None,
        peak_tps=max(acked_rate.values(), default=None),
        mean_consume_tps=consumed / load_seconds if load_seconds else None,
        peak_consume_tps=max(consume_rate.values(), default=None))


def _load_seconds(data: RunData, seconds: list[int]) -> float:
    """How long load ran: load-started..load-stopped from the history, else the span of Locust's counts."""
    t = {m.event: m.t for m in data.marks}
    if "load-started" in t and "load-stopped" in t and t["load-stopped"] > t["load-started"]:
        return t["load-stopped"] - t["load-started"]
    return float(seconds[-1] - seconds[0] + 1) if seconds else 0.0


# -- metrics -------------------------------------------------------------------------------------------
def _fill_processes(data: RunData, rows: list[dict[str, str]]) -> None:
    for r in rows:
        ts, node = num(r.get("ts")), r.get("node") or "?"
        if ts is None:
            continue
        t = round(ts - data.t0, 3)
        data.roles.setdefault(node, r.get("role") or "")
        data.node_cpu.setdefault(node, Series()).add(t, num(r.get("cpu_percent")))
        rss, shared = num(r.get("rss_bytes")), num(r.get("shared_bytes"))
        data.node_rss.setdefault(node, Series()).add(t, rss)
        data.node_anon.setdefault(node, Series()).add(t, None if rss is None or shared is None else rss - shared)
    for table in (data.node_cpu, data.node_rss, data.node_anon):
        table.update((node, s.with_gaps()) for node, s in list(table.items()))


def _fill_system(data: RunData, rows: list[dict[str, str]]) -> None:
    for r in rows:
        ts = num(r.get("ts"))
        if ts is None:
            continue
        for column, cell in r.items():
            if column != "ts" and column is not None:
                data.system.setdefault(column, Series()).add(round(ts - data.t0, 3), num(cell))
    data.system = {column: s.with_gaps() for column, s in data.system.items()}


def _note_missing(data: RunData, events: list[dict[str, Any]], stats: list[dict[str, Any]],
                  process_rows: list[dict[str, str]], system_rows: list[dict[str, str]]) -> None:
    checks = ((events, f"no history ({data.run.history.name})"),
              (stats, "no Locust statistics (locust/stats.json)"),
              (process_rows, "no per-node metrics (metrics/process.csv)"),
              (system_rows, "no system metrics (metrics/system.csv)"))
    data.missing = [note for present, note in checks if not present]
