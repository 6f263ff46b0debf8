from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.rundir import RunDir
from reports import charts
from reports.latency import LatencyRow
from reports.series import FaultWindow, Mark, RunData, Series, load_run

T0 = 1_790_000_000.0

# A hand-written history: two kill-master windows, an overlapping partition, one fault never healed.
HISTORY = [
    {"ts": T0, "event": "run-started"},
    {"ts": T0 + 2, "event": "cluster-ready"},
    {"ts": T0 + 3, "event": "load-started"},
    {"ts": T0 + 10, "event": "fault-inject", "fault": "kill-master", "targets": ["broker-a-0"]},
    {"ts": T0 + 14, "event": "fault-inject", "fault": "partition-namesrv", "targets": ["ns-0"]},
    {"ts": T0 + 20, "event": "fault-heal", "fault": "kill-master", "targets": ["broker-a-0"]},
    {"ts": T0 + 25, "event": "fault-heal", "fault": "partition-namesrv", "targets": ["ns-0"]},
    {"ts": T0 + 30, "event": "fault-inject", "fault": "kill-master", "targets": ["broker-b-0"]},
    {"ts": T0 + 50, "event": "load-stopped"},
    {"ts": T0 + 52, "event": "cluster-down"},
    {"ts": T0 + 53, "event": "run-finished"},
]


def run_data(tmp: Path, history: list[dict[str, Any]] = HISTORY) -> RunData:
    run = RunDir(tmp / "r" / "20260921T141320Z")
    run.make_layout()
    run.history.write_text("".join(json.dumps({"mono": e["ts"] - T0, **e}) + "\n" for e in history))
    return load_run(run)


def test_timeline_shapes_from_a_handwritten_history(tmp_path: Path) -> None:
    data = run_data(tmp_path)
    assert [(w.fault, w.start, w.end, w.healed) for w in data.faults] == [
        ("kill-master", 10, 20, True), ("partition-namesrv", 14, 25, True), ("kill-master", 30, 53, False)]
    shapes, notes = charts.timeline_shapes(data.faults, data.marks)
    rects = [s for s in shapes if s["type"] == "rect"]
    lines = [s for s in shapes if s["type"] == "line"]
    assert [(r["x0"], r["x1"]) for r in rects] == [(10, 20), (14, 25), (30, 53)]
    assert all(r["yref"] == "paper" and (r["y0"], r["y1"]) == (0, 1) for r in rects)
    # one colour per fault name, the same for both kill-master windows
    assert rects[0]["fillcolor"] == rects[2]["fillcolor"] != rects[1]["fillcolor"]
    assert [line["x0"] for line in lines] == [0, 2, 3, 50, 52, 53]  # phase events only, no fault events
    assert [n["text"] for n in notes] == ["kill-master broker-a-0", "partition-namesrv ns-0",
                                          "kill-master broker-b-0 (never healed)"]


def test_fault_colours_follow_first_appearance() -> None:
    w = [FaultWindow("b", (), 0, 1, True), FaultWindow("a", (), 1, 2, True), FaultWindow("b", (), 3, 4, True)]
    assert charts.fault_colours(w) == {"b": charts.FAULT_COLOURS[0], "a": charts.FAULT_COLOURS[1]}


def test_every_time_chart_shares_the_run_axis_and_overlay(tmp_path: Path) -> None:
    data = run_data(tmp_path)
    data.rates = {"acked": Series([3, 4], [5, 6]), "consumed": Series([3, 4], [5, 5]),
                  "failed": Series([3, 4], [0, 1])}
    data.node_cpu = {"ns-0": Series([1, 2], [None, 3]), "broker-a-0": Series([1, 2], [None, 90])}
    data.roles = {"ns-0": "namesrv", "broker-a-0": "master"}
    data.system = {"cpu_percent": Series([1, 2], [None, 40])}
    figs = [charts.throughput_figure(data), charts.node_figure(data, "cpu"), charts.system_figure(data, "cpu")]
    for fig in figs:
        assert fig is not None
        assert list(fig.layout.xaxis.range) == [0, 53]
        assert len(fig.layout.shapes) == 3 + 6
        pins = fig.data[-1]  # the event pins come last so data traces keep their default colours
        assert pins.name == "events" and list(pins.hovertext) == [m.event for m in data.marks]


def test_throughput_hides_an_all_zero_failure_line(tmp_path: Path) -> None:
    data = run_data(tmp_path, [])
    data.rates = {"acked": Series([0, 1], [5, 6]), "failed": Series([0, 1], [0, 0])}
    fig = charts.throughput_figure(data)
    assert fig is not None and [t.name for t in fig.data] == ["sent (acknowledged)"]


def test_figures_are_none_without_data(tmp_path: Path) -> None:
    data = run_data(tmp_path, [])
    assert charts.throughput_figure(data) is None
    assert charts.latency_time_figure(data) is None
    assert charts.latency_bars_figure([]) is None
    assert charts.node_figure(data, "cpu") is None and charts.node_figure(data, "rss") is None
    assert all(charts.system_figure(data, k) is None for k in charts.SYSTEM_CHARTS)


def test_node_chart_lines_are_named_by_role_and_scaled(tmp_path: Path) -> None:
    data = run_data(tmp_path, [])
    data.node_rss = {"b-0": Series([0, 1], [2 * 2**20, None]), "ns-0": Series([0, 1], [2**20, 2**20])}
    data.roles = {"b-0": "master", "ns-0": "namesrv"}
    fig = charts.node_figure(data, "rss")
    assert fig is not None
    assert [t.name for t in fig.data] == ["b-0 (master)", "ns-0 (namesrv)"]
    assert list(fig.data[0].y) == [2.0, None]


def test_node_colours_come_from_role_families() -> None:
    roles = {"m1": "master", "m2": "master", "s1": "slave", "x": "loadgen"}
    colours = charts.node_colours(["m1", "m2", "s1", "x"], roles)
    assert len(set(colours.values())) == 4
    assert colours["m1"] in charts._ROLE_PALETTES["master"] and colours["s1"] in charts._ROLE_PALETTES["slave"]


def test_latency_bars_keep_type_colours_and_skip_empty_types() -> None:
    rows = [LatencyRow("CONSUME", 10, 0, 5.0, 4, 8, 9, 9, 9.5), LatencyRow("PULL", 0, 0, None, *[None] * 5),
            LatencyRow("ODD", 3, 0, 1.0, 1, 1, 1, 1, 1)]
    fig = charts.latency_bars_figure(rows)
    assert fig is not None
    assert [t.name for t in fig.data] == ["CONSUME", "ODD"]
    assert fig.data[0].marker.color == charts.TYPE_COLOURS["CONSUME"]
    assert fig.data[1].marker.color not in charts.TYPE_COLOURS.values()


def test_latency_time_orders_known_types_first(tmp_path: Path) -> None:
    data = run_data(tmp_path, [])
    s = Series([0], [1.0])
    data.latency_windows = {"CONSUME": {"p99": s, "p50": s}, "SEND": {"p99": s}}
    fig = charts.latency_time_figure(data)
    assert fig is not None
    assert [t.name for t in fig.data] == ["SEND p99", "CONSUME p99", "CONSUME p50"]
    assert fig.data[2].line.dash == "dot"


def test_marks_without_faults_still_draw_lines() -> None:
    shapes, notes = charts.timeline_shapes([], [Mark(1.0, "load-started")])
    assert len(shapes) == 1 and shapes[0]["type"] == "line" and notes == []
