"""Render ``report.html``: one self-contained file (plotly.js inlined once) that opens offline.

The page puts charts first (throughput, latency, nodes, system), then the tables and the event list.
A missing input turns into a "no data" note in its section, never into an exception.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from harness.rundir import RunDir, find_run, iso_utc, write_atomic
from reports import charts
from reports.series import RunData, load_run

logger = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).parent / "templates"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@dataclass(frozen=True)
class Chart:
    """A chart slot: the figure's HTML, or the note saying why there is none."""

    key: str
    title: str
    html: Markup | None
    note: str = ""


def render_report(run: RunDir | Path | str, out: Path | None = None) -> Path:
    """Write the report of ``run`` (a RunDir, or anything :func:`find_run` accepts) to ``out``
    (default ``<run>/report.html``) and return its path."""
    run_dir = run if isinstance(run, RunDir) else find_run(run)
    data = load_run(run_dir)
    html = render_html(data)
    target = out or run_dir.report
    write_atomic(target, html)
    logger.info("report written to %s (%.1f MiB)", target, len(html) / 2**20)
    return target


def render_html(data: RunData) -> str:
    """The report page as a string."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(count=fmt_count, ms=fmt_ms, rate=fmt_rate, secs=fmt_secs)
    template = env.get_template("report.html.j2")
    return template.render(
        plotly_js=Markup(get_plotlyjs()), data=data, meta=data.meta, totals=data.totals,
        title=f"{data.meta.get('name') or data.run.name} {data.run.stamp}",
        started=_utc(data.t0), charts=_charts(data), system_charts=_system_charts(data),
        colours=charts.fault_colours(data.faults), events=_event_rows(data),
        meta_json=json.dumps(data.meta, indent=2, default=str), generated=iso_utc())


def _utc(epoch: float) -> str:
    return iso_utc(epoch).replace("T", " ") if epoch else "unknown"


def _figure_html(key: str, fig: go.Figure) -> Markup:
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{key}",
                              config=_PLOT_CONFIG, default_width="100%"))


def _chart(key: str, title: str, fig: go.Figure | None, note: str) -> Chart:
    return Chart(key, title, _figure_html(key, fig) if fig is not None else None, "" if fig else note)


def _charts(data: RunData) -> dict[str, Chart]:
    no_locust = "No data: the run has no Locust statistics (locust/stats.json)."
    no_nodes = "No data: the run has no per-node metrics (metrics/process.csv)."
    return {c.key: c for c in (
        _chart("throughput", "Messages per second", charts.throughput_figure(data), no_locust),
        _chart("latency-time", "Latency over time", charts.latency_time_figure(data),
               "No per-second latency: it needs Locust's --csv-full-history (locust/stats_stats_history.csv)."
               if data.latency else no_locust),
        _chart("latency", "Latency percentiles", charts.latency_bars_figure(data.latency), no_locust),
        _chart("cpu", "CPU per node", charts.node_figure(data, "cpu"), no_nodes),
        _chart("rss", "Memory (RSS) per node", charts.node_figure(data, "rss"), no_nodes),
        _chart("anon", "Memory without file-backed pages (RSS − shared) per node", charts.node_figure(data, "anon"),
               "No data: this run's process.csv has no shared_bytes column."),
    )}


def _system_charts(data: RunData) -> list[Chart]:
    titles = {"cpu": "System CPU", "mem": "System memory", "disk": "Disk I/O", "net": "Network I/O"}
    note = "No data: the run has no system metrics (metrics/system.csv)."
    return [_chart(f"system-{k}", titles[k], charts.system_figure(data, k), note) for k in charts.SYSTEM_CHARTS]


def _event_rows(data: RunData) -> list[dict[str, Any]]:
    rows = []
    for e in data.events:
        details = {k: v for k, v in e.items() if k not in ("ts", "mono", "event", "t")}
        rows.append({"t": e["t"], "utc": _utc(float(e["ts"]))[11:], "event": e["event"],
                     "fault": details.get("fault"),
                     "details": ", ".join(f"{k}={_plain(v)}" for k, v in details.items())})
    return rows


def _plain(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# -- formatting filters -------------------------------------------------------------------------------
def fmt_count(n: float | None) -> str:
    return "–" if n is None else f"{n:,.0f}"


def fmt_rate(n: float | None) -> str:
    return "–" if n is None else f"{n:,.1f}" if n < 100 else f"{n:,.0f}"


def fmt_ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}" if v < 10 else f"{v:,.0f}"


def fmt_secs(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    return f"{h}h {rest // 60:02d}m {rest % 60:02d}s" if h else f"{rest // 60}m {rest % 60:02d}s"
