"""Plotly figures for the report. Each builder returns a figure, or None when it has nothing to draw.

Every time chart uses the same x axis (seconds since run start, fixed to the whole run), carries the
fault windows as shaded bands and the phase events as dotted vertical lines, so a dip in TPS can be read
straight down to the CPU, memory and network charts under it.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import plotly.graph_objects as go

from reports.latency import LatencyRow
from reports.series import FaultWindow, Mark, RunData, Series

TYPE_COLOURS = {"SEND": "#4c78a8", "PULL": "#f58518", "CONSUME": "#54a24b"}
"""Each Locust request type keeps its colour on every latency chart."""
FAULT_COLOURS = ("#e45756", "#f58518", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d")
_MIB = 1024 * 1024


def timeline_shapes(faults: Sequence[FaultWindow], marks: Sequence[Mark]) -> tuple[list[dict], list[dict]]:
    """Layout shapes and annotations for fault windows (one colour per fault name, in order of first
    appearance) and phase marks. Pure data, so it can be checked without rendering."""
    colours = fault_colours(faults)
    shapes: list[dict] = []
    notes: list[dict] = []
    for w in faults:
        colour = colours[w.fault]
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": w.start, "x1": w.end, "y0": 0,
                       "y1": 1, "fillcolor": colour, "opacity": 0.18, "line": {"width": 0}, "layer": "below"})
        label = w.fault + (f" {','.join(w.targets)}" if w.targets else "") + ("" if w.healed else " (never healed)")
        notes.append({"x": w.start, "y": 1, "xref": "x", "yref": "paper", "text": label, "showarrow": False,
                      "xanchor": "left", "yanchor": "top", "font": {"size": 10, "color": colour}})
    for m in marks:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": m.t, "x1": m.t, "y0": 0, "y1": 1,
                       "line": {"color": "#888", "width": 1, "dash": "dot"}, "layer": "below"})
    return shapes, notes


def fault_colours(faults: Iterable[FaultWindow]) -> dict[str, str]:
    """The colour each fault name gets on the charts (for the legend of the event list)."""
    colours: dict[str, str] = {}
    for w in faults:
        colours.setdefault(w.fault, FAULT_COLOURS[len(colours) % len(FAULT_COLOURS)])
    return colours


def time_figure(data: RunData, y_title: str, traces: Sequence[go.Scatter], height: int = 320) -> go.Figure:
    """A time chart of ``traces`` with the shared axis, the timeline overlay and the house layout."""
    shapes, notes = timeline_shapes(data.faults, data.marks)
    fig = go.Figure(list(traces))
    fig.update_layout(
        template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 30, "b": 40},
        hovermode="x unified", shapes=shapes, annotations=notes, uirevision="run",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 11}},
        xaxis={"title": {"text": "seconds since run start", "font": {"size": 11}},
               "range": [0, max(data.duration, 1.0)], "zeroline": False},
        yaxis={"title": {"text": y_title, "font": {"size": 11}}, "rangemode": "tozero"})
    if data.marks:  # last: plotly hands default colours out by trace index
        _add_mark_pins(fig, data.marks)
    return fig


def _add_mark_pins(fig: go.Figure, marks: Sequence[Mark]) -> None:
    # Phase labels as text would pile up (cluster-ready and load-started are often a second apart), so each
    # dotted line gets a small pin at the top that names its event on hover.
    fig.add_trace(go.Scatter(
        x=[m.t for m in marks], y=[0.97] * len(marks), yaxis="y2", mode="markers", name="events",
        marker={"symbol": "triangle-down", "size": 8, "color": "#888"}, hovertext=[m.event for m in marks],
        hovertemplate="%{hovertext}<extra></extra>", showlegend=False, cliponaxis=False))
    fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})


def _line(s: Series, name: str, colour: str | None = None, scale: float = 1.0, dash: str = "solid",
          **kw: object) -> go.Scatter:
    values = [None if v is None else round(v / scale, 3) for v in s.v]
    line = {"width": 1.5, "dash": dash, **({"color": colour} if colour else {})}
    return go.Scatter(x=s.t, y=values, name=name, mode="lines", line=line, **kw)


def throughput_figure(data: RunData) -> go.Figure | None:
    """Acknowledged sends, consumed messages and failures per second."""
    styles = (("acked", "sent (acknowledged)", "#4c78a8"), ("consumed", "consumed", "#54a24b"),
              ("failed", "send failures", "#e45756"))
    if not data.rates:
        return None
    traces = [_line(data.rates[key], name, colour) for key, name, colour in styles
              if key in data.rates and (key != "failed" or any(data.rates[key].values()))]
    return time_figure(data, "messages / s", traces, height=360)


def latency_time_figure(data: RunData) -> go.Figure | None:
    """p50 (dotted) and p99 (solid) per request type over time, from Locust's ~10 s windows."""
    if not data.latency_windows:
        return None
    kinds = sorted(data.latency_windows, key=lambda k: (list(TYPE_COLOURS).index(k) if k in TYPE_COLOURS else 9, k))
    colours = type_colours(kinds)
    traces = [_line(data.latency_windows[kind][label], f"{kind} {label}", colours[kind], legendgroup=kind,
                    dash=dash)
              for kind in kinds for label, dash in (("p99", "solid"), ("p50", "dot"))
              if label in data.latency_windows[kind]]
    return time_figure(data, "latency, ms (10 s window)", traces)


def latency_bars_figure(rows: Sequence[LatencyRow]) -> go.Figure | None:
    """Overall percentiles per request type, side by side (log scale: p50 and max differ by decades)."""
    rows = [r for r in rows if r.count]
    if not rows:
        return None
    labels = ("p50", "p90", "p99", "p99.9", "max")
    colours = type_colours([r.request_type for r in rows])
    fig = go.Figure()
    for r in rows:
        values = [r.p50, r.p90, r.p99, r.p999, r.max]
        fig.add_trace(go.Bar(x=list(labels), y=values, name=r.request_type, marker_color=colours[r.request_type],
                             text=[_ms(v) for v in values], textposition="outside", cliponaxis=False))
    fig.update_layout(template="plotly_white", height=320, barmode="group",
                      margin={"l": 60, "r": 20, "t": 30, "b": 40},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
                      yaxis={"title": {"text": "latency, ms (log)"}, "type": "log", "dtick": 1})
    return fig


def type_colours(kinds: Sequence[str]) -> dict[str, str]:
    """Known request types keep their fixed colour; others get the rest of the palette in order."""
    spare = itertools.cycle([c for c in _OTHER if c not in TYPE_COLOURS.values()])
    return {k: TYPE_COLOURS.get(k) or next(spare) for k in kinds}


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"


_ROLE_PALETTES = {
    # One hue family per role, so masters, slaves and NameServers read as groups even with many nodes.
    "master": ("#c0392b", "#e67e22", "#d35400", "#e74c3c", "#f39c12"),
    "slave": ("#2471a3", "#17a589", "#5dade2", "#48c9b0", "#1f618d", "#76d7c4"),
    "namesrv": ("#7d3c98", "#a569bd", "#5b2c6f"),
}
_OTHER = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#eeca3b", "#72b7b2", "#ff9da6")


def node_colours(nodes: Sequence[str], roles: dict[str, str]) -> dict[str, str]:
    """A colour per node from its role's palette (cycling when a role has more nodes than colours)."""
    used: dict[str, int] = {}
    out = {}
    for node in nodes:
        role = roles.get(node, "")
        palette = _ROLE_PALETTES.get(role, _OTHER)
        out[node] = palette[used.get(role, 0) % len(palette)]
        used[role] = used.get(role, 0) + 1
    return out


def node_figure(data: RunData, which: str) -> go.Figure | None:
    """One line per node: ``which`` is ``cpu`` (% of one core), ``rss`` or ``anon`` (MiB)."""
    series = {"cpu": data.node_cpu, "rss": data.node_rss, "anon": data.node_anon}[which]
    if not any(s.values() for s in series.values()):
        return None
    nodes = sorted(series, key=lambda n: (data.roles.get(n, ""), n))
    colours = node_colours(nodes, data.roles)
    traces = [_line(series[n], f"{n} ({data.roles[n]})" if data.roles.get(n) else n, colours[n],
                    scale=1.0 if which == "cpu" else _MIB, legendgroup=data.roles.get(n, ""))
              for n in nodes]
    axis = {"cpu": "CPU, % of one core", "rss": "RSS, MiB", "anon": "RSS − file-backed, MiB"}[which]
    fig = time_figure(data, axis, traces, height=380)
    fig.update_layout(legend={"orientation": "v", "y": 1, "x": 1.01, "xanchor": "left", "yanchor": "top"},
                      margin={"r": 180})
    return fig


_SYSTEM = {
    "cpu": ("CPU, % of all cores", (("cpu_percent", "cpu %", 1.0),)),
    "mem": ("memory, MiB", (("mem_used_bytes", "used", _MIB), ("mem_available_bytes", "available", _MIB))),
    "disk": ("disk, MiB/s", (("disk_read_bytes_per_s", "read", _MIB), ("disk_write_bytes_per_s", "write", _MIB))),
    "net": ("network (all interfaces, loopback too), MiB/s",
            (("net_sent_bytes_per_s", "sent", _MIB), ("net_recv_bytes_per_s", "received", _MIB))),
}


def system_figure(data: RunData, which: str) -> go.Figure | None:
    """One of the system charts: ``cpu``, ``mem``, ``disk`` or ``net``."""
    title, columns = _SYSTEM[which]
    present = [(c, name, scale) for c, name, scale in columns if c in data.system and data.system[c].values()]
    if not present:
        return None
    colours = ("#4c78a8", "#f58518")
    traces = [_line(data.system[column], name, colours[i % 2], scale=scale)
              for i, (column, name, scale) in enumerate(present)]
    return time_figure(data, title, traces, height=280)


SYSTEM_CHARTS = tuple(_SYSTEM)
