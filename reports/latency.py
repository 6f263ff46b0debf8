"""Latency figures from Locust's outputs.

Locust keeps each entry's response times as a histogram ``{rounded ms: count}`` (about two significant
digits, sub-millisecond values round to 0), so percentiles computed here carry that resolution; the max
comes from the exact ``max_response_time``. The histogram includes failed requests, as Locust's own do.
Per-second latency does not exist in stats.json; the only time-resolved source is the
``--csv-full-history`` CSV, whose percentiles cover Locust's ~10 s "current" window.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
_HISTORY_COLUMNS = (("p50", "50%"), ("p90", "90%"), ("p99", "99%"), ("p99.9", "99.9%"))


@dataclass(frozen=True)
class LatencyRow:
    """Overall latency of one request type, in milliseconds."""

    request_type: str
    count: int
    failures: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None


def percentile(hist: dict[int, int], q: float) -> float | None:
    """Nearest-rank percentile of a ``{value: count}`` histogram: the smallest value with at least
    ``ceil(q * n)`` observations at or below it. None for an empty histogram."""
    n = sum(hist.values())
    if n <= 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist))


def merged_histograms(stats: list[dict[str, Any]]) -> dict[str, dict[int, int]]:
    """One histogram per request type (Locust's ``method``), summed over names (topics)."""
    merged: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for entry in stats:
        for value, count in (entry.get("response_times") or {}).items():
            merged[str(entry.get("method", "?"))][int(float(value))] += int(count)
    return {k: dict(v) for k, v in merged.items()}


def latency_rows(stats: list[dict[str, Any]]) -> list[LatencyRow]:
    """One row per request type, in order of first appearance."""
    hists = merged_histograms(stats)
    rows = []
    for method in dict.fromkeys(str(e.get("method", "?")) for e in stats):
        entries = [e for e in stats if str(e.get("method", "?")) == method]
        hist = hists.get(method, {})
        rows.append(LatencyRow(
            request_type=method,
            count=sum(int(e.get("num_requests") or 0) for e in entries),
            failures=sum(int(e.get("num_failures") or 0) for e in entries),
            mean=_mean(entries),
            p50=percentile(hist, 0.50), p90=percentile(hist, 0.90),
            p99=percentile(hist, 0.99), p999=percentile(hist, 0.999),
            max=max((float(e["max_response_time"]) for e in entries if e.get("max_response_time") is not None),
                    default=None)))
    return rows


def _mean(entries: list[dict[str, Any]]) -> float | None:
    # Requests logged with no response time count in num_requests but not in the total.
    timed = sum(int(e.get("num_requests") or 0) - int(e.get("num_none_requests") or 0) for e in entries)
    total = sum(float(e.get("total_response_time") or 0) for e in entries)
    return total / timed if timed > 0 else None


def latency_windows(history: list[dict[str, str]]) -> dict[str, dict[str, list[tuple[float, float | None]]]]:
    """Per request type, the windowed percentiles over time from ``stats_stats_history.csv``.

    Only per-entry rows count (they exist with ``--csv-full-history``); the Aggregated rows mix request
    types. With several names (topics) of one type in the same second, the worst one is kept. A row whose
    100 % column is 0 or N/A had an empty window and gives no point."""
    acc: dict[str, dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in history:
        kind, ts = row.get("Type") or "", num(row.get("Timestamp"))
        if not kind or row.get("Name") == "Aggregated" or ts is None or not num(row.get("100%")):
            continue
        for label, column in _HISTORY_COLUMNS:
            value = num(row.get(column))
            if value is not None:
                slot = acc[kind][label]
                slot[ts] = max(value, slot.get(ts, value))
    return {kind: {label: sorted(points.items()) for label, points in by_label.items()}
            for kind, by_label in acc.items()}


def num(text: str | None) -> float | None:
    """A CSV cell as a number; None for an empty cell, ``N/A`` and anything else unreadable."""
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:  # "N/A"
        return None
