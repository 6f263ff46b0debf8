from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.rundir import RunDir
from reports.latency import latency_rows, latency_windows, merged_histograms, num, percentile
from reports.series import FaultWindow, Mark, Series, fault_windows, load_run

T0 = 1_790_000_000.0


def entry(method: str, per_sec: dict[int, int], fails: dict[int, int] | None = None,
          hist: dict[int, int] | None = None, name: str = "TopicTest", max_rt: float = 40.0) -> dict[str, Any]:
    """A stats.json entry shaped like Locust's serialize() (JSON object keys are strings)."""
    hist = hist or {5: sum(per_sec.values())}
    return {"name": name, "method": method, "num_requests": sum(per_sec.values()), "num_none_requests": 0,
            "num_failures": sum((fails or {}).values()), "total_response_time": sum(k * v for k, v in hist.items()),
            "max_response_time": max_rt, "min_response_time": 0.5, "total_content_length": 0,
            "response_times": {str(k): v for k, v in hist.items()},
            "num_reqs_per_sec": {str(int(T0) + s): c for s, c in per_sec.items()},
            "num_fail_per_sec": {str(int(T0) + s): c for s, c in (fails or {}).items()},
            "start_time": T0, "last_request_timestamp": T0 + 10}


def make_run(tmp: Path, history: list[dict[str, Any]] | None = None, stats: list[dict[str, Any]] | None = None,
             process: str | None = None, system: str | None = None) -> RunDir:
    run = RunDir(tmp / "r" / "20260921T141320Z")
    run.make_layout()
    if history is not None:
        run.history.write_text("".join(json.dumps({"mono": e["ts"], **e}) + "\n" for e in history))
    if stats is not None:
        run.locust_json.write_text(json.dumps(stats))
    if process is not None:
        run.process_csv.write_text(process)
    if system is not None:
        run.system_csv.write_text(system)
    return run


# -- percentiles ------------------------------------------------------------------------------------
def test_percentile_nearest_rank() -> None:
    hist = {1: 50, 2: 40, 10: 9, 200: 1}  # 100 observations
    assert percentile(hist, 0.5) == 1
    assert percentile(hist, 0.51) == 2
    assert percentile(hist, 0.9) == 2
    assert percentile(hist, 0.99) == 10
    assert percentile(hist, 0.999) == 200
    assert percentile(hist, 1.0) == 200
    assert percentile({}, 0.5) is None
    assert percentile({7: 1}, 0.0) == 7


def test_percentile_agrees_with_sorted_samples() -> None:
    samples = sorted([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4])
    hist: dict[int, int] = {}
    for s in samples:
        hist[s] = hist.get(s, 0) + 1
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.95):
        assert percentile(hist, q) == samples[max(1, math.ceil(q * len(samples))) - 1]


def test_histograms_merge_per_request_type_across_names() -> None:
    stats = [entry("SEND", {0: 3}, hist={1: 2, 5: 1}, name="t1"), entry("SEND", {0: 1}, hist={5: 1}, name="t2"),
             entry("CONSUME", {0: 2}, hist={20: 2})]
    assert merged_histograms(stats) == {"SEND": {1: 2, 5: 2}, "CONSUME": {20: 2}}


def test_latency_rows() -> None:
    stats = [entry("SEND", {0: 90, 1: 10}, fails={1: 2}, hist={2: 90, 100: 10}, max_rt=123.4),
             entry("CONSUME", {0: 4}, hist={30: 4}, max_rt=31.0)]
    send, consume = latency_rows(stats)
    assert (send.request_type, send.count, send.failures) == ("SEND", 100, 2)
    assert (send.p50, send.p90, send.p99, send.max) == (2, 2, 100, 123.4)
    assert send.mean == pytest.approx((2 * 90 + 100 * 10) / 100)
    assert consume.p999 == 30


def test_latency_rows_mean_ignores_requests_without_time() -> None:
    e = entry("SEND", {0: 10}, hist={4: 8})
    e.update(num_none_requests=2, total_response_time=32)
    assert latency_rows([e])[0].mean == 4


def test_num() -> None:
    assert [num(x) for x in ("", None, "N/A", "1.5", "7")] == [None, None, None, 1.5, 7.0]


# -- locust history csv -----------------------------------------------------------------------------
HISTORY_HEADER = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,90%,99%,99.9%,100%\n"


def test_latency_windows_per_type_worst_name_skips_empty_and_aggregated() -> None:
    text = HISTORY_HEADER + (
        f"{int(T0)},2,SEND,t1,0,0,0,0,0,0,0\n"          # empty window: no point
        f"{int(T0) + 1},2,SEND,t1,1,0,4,8,12,15,20\n"
        f"{int(T0) + 1},2,SEND,t2,1,0,5,7,30,31,40\n"   # worse topic wins for p50/p99
        f"{int(T0) + 1},2,,Aggregated,2,0,5,8,30,31,40\n"
        f"{int(T0) + 2},2,CONSUME,t1,1,0,N/A,N/A,N/A,N/A,N/A\n")
    windows = latency_windows(list(csv.DictReader(io.StringIO(text))))
    assert set(windows) == {"SEND"}
    assert windows["SEND"]["p50"] == [(T0 + 1, 5.0)]
    assert windows["SEND"]["p90"] == [(T0 + 1, 8.0)]
    assert windows["SEND"]["p99"] == [(T0 + 1, 30.0)]


# -- fault windows ----------------------------------------------------------------------------------
def ev(t: float, event: str, **kw: Any) -> dict[str, Any]:
    return {"t": t, "event": event, **kw}


def test_fault_windows_pair_by_fault_and_targets_fifo() -> None:
    events = [ev(10, "fault-inject", fault="kill-master", targets=["b-0"]),
              ev(12, "fault-inject", fault="latency", targets=["ns-1", "ns-0"]),
              ev(15, "fault-heal", fault="latency", targets=["ns-0", "ns-1"]),  # target order does not matter
              ev(20, "fault-heal", fault="kill-master", targets=["b-0"]),
              ev(30, "fault-inject", fault="kill-master", targets=["b-0"]),
              ev(40, "fault-heal", fault="kill-master", targets=["b-0"])]
    assert fault_windows(events, end=100) == [
        FaultWindow("kill-master", ("b-0",), 10, 20, True),
        FaultWindow("latency", ("ns-0", "ns-1"), 12, 15, True),
        FaultWindow("kill-master", ("b-0",), 30, 40, True)]


def test_unhealed_inject_runs_to_end_and_stray_heal_is_ignored() -> None:
    events = [ev(5, "fault-heal", fault="pause", targets=["x"]),
              ev(50, "fault-inject", fault="pause", targets="x")]  # a bare string target is one target
    assert fault_windows(events, end=80) == [FaultWindow("pause", ("x",), 50, 80, False)]


def test_ids_pair_injects_with_identical_fault_and_targets() -> None:
    events = [ev(1, "fault-inject", fault="latency", targets=["a"], id="f1"),
              ev(2, "fault-inject", fault="latency", targets=["a"], id="f2"),
              ev(3, "fault-heal", fault="latency", targets=["a"], id="f2"),
              ev(9, "fault-heal", fault="latency", targets=["a"], id="f1")]
    assert [(w.start, w.end) for w in fault_windows(events, end=10)] == [(1, 9), (2, 3)]


# -- series -----------------------------------------------------------------------------------------
def test_with_gaps_breaks_lines_over_pauses() -> None:
    s = Series([0, 1, 2, 10, 11], [1, 1, 1, 2, 2])
    g = s.with_gaps()
    assert g.t == [0, 1, 2, 3, 10, 11] and g.v == [1, 1, 1, None, 2, 2]
    assert Series([0, 1, 2], [1, 2, 3]).with_gaps().v == [1, 2, 3]


def test_load_run_builds_dense_rates_totals_and_timeline(tmp_path: Path) -> None:
    history = [{"ts": T0 - 2, "event": "run-started"}, {"ts": T0, "event": "load-started"},
               {"ts": T0 + 1.5, "event": "fault-inject", "fault": "kill-master", "targets": ["b-0"]},
               {"ts": T0 + 2.5, "event": "fault-heal", "fault": "kill-master", "targets": ["b-0"]},
               {"ts": T0 + 5, "event": "load-stopped"}, {"ts": T0 + 6, "event": "run-finished"}]
    stats = [entry("SEND", {0: 10, 1: 12, 4: 8}, fails={1: 2}), entry("CONSUME", {1: 9, 3: 11}),
             entry("PULL", {0: 3})]
    run = make_run(tmp_path, history=history, stats=stats)
    data = load_run(run)
    assert data.t0 == T0 - 2 and data.duration == 8
    assert data.rates["sent"].t == [2, 3, 4, 5, 6]  # seconds with no request are explicit zeros
    assert data.rates["sent"].v == [10, 12, 0, 0, 8]
    assert data.rates["acked"].v == [10, 10, 0, 0, 8]
    assert data.rates["failed"].v == [0, 2, 0, 0, 0]
    assert data.rates["consumed"].v == [0, 9, 0, 11, 0]
    assert data.totals is not None
    assert (data.totals.sent, data.totals.acked, data.totals.failed, data.totals.consumed) == (30, 28, 2, 20)
    assert data.totals.load_seconds == 5 and data.totals.mean_tps == pytest.approx(28 / 5)
    assert data.totals.peak_tps == 10 and data.totals.peak_consume_tps == 11
    assert data.faults == [FaultWindow("kill-master", ("b-0",), 3.5, 4.5, True)]
    assert data.marks == [Mark(0, "run-started"), Mark(2, "load-started"), Mark(7, "load-stopped"),
                          Mark(8, "run-finished")]
    assert [r.request_type for r in data.latency] == ["SEND", "CONSUME", "PULL"]
    assert data.missing == ["no per-node metrics (metrics/process.csv)", "no system metrics (metrics/system.csv)"]


PROCESS = ("ts,node,role,pid,cpu_percent,rss_bytes,num_threads,read_bytes,write_bytes,ctx_switches\n"
           f"{T0},ns-0,namesrv,11,,1000,3,,,5\n"
           f"{T0},b-0,master,12,,2000,9,0,0,7\n"
           f"{T0 + 1},ns-0,namesrv,11,5.5,1100,3,,,6\n"
           f"{T0 + 1},b-0,master,12,150.0,2100,9,0,4096,9\n"
           f"{T0 + 2},ns-0,namesrv,11,4.5,1200,3,,,7\n")
SYSTEM = ("ts,cpu_percent,mem_used_bytes,mem_available_bytes,disk_read_bytes_per_s,disk_write_bytes_per_s,"
          "net_sent_bytes_per_s,net_recv_bytes_per_s,load1\n"
          f"{T0},,500,1500,,,,,0.5\n{T0 + 1},40.0,600,1400,0.0,1024.0,10.0,10.0,0.6\n")


def test_load_run_reads_metrics_without_history(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path, process=PROCESS, system=SYSTEM))
    assert data.t0 == T0  # earliest timestamp found when nothing says when the run started
    assert data.roles == {"ns-0": "namesrv", "b-0": "master"}
    assert data.node_cpu["ns-0"].v == [None, 5.5, 4.5]  # the first sample has no cpu figure
    assert data.node_cpu["b-0"].t == [0, 1] and data.node_cpu["b-0"].v == [None, 150.0]
    assert data.node_rss["ns-0"].v == [1000, 1100, 1200]
    assert data.system["cpu_percent"].v == [None, 40.0]
    assert data.system["disk_write_bytes_per_s"].v == [None, 1024.0]
    assert data.totals is None and data.rates == {}
    assert "no Locust statistics (locust/stats.json)" in data.missing


def test_load_run_of_an_empty_dir(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path))
    assert data.duration == 0 and data.events == [] and data.totals is None
    assert len(data.missing) == 4


def test_load_run_survives_damaged_inputs(tmp_path: Path) -> None:
    run = make_run(tmp_path, process=PROCESS)
    run.history.write_text('{"ts":1,"mono":1,"event":"a"}\nbroken\n{"ts":2,"mono":2,"event":"b"}\n')
    run.locust_json.write_text("[{not json")
    data = load_run(run)
    assert data.events == [] and data.totals is None
    assert data.node_cpu  # what could be read still is


def test_meta_start_time_is_used_without_history(tmp_path: Path) -> None:
    run = make_run(tmp_path, stats=[entry("SEND", {5: 1})])
    run.meta.write_text(json.dumps({"started_utc": "2026-09-21T14:13:10.000Z", "status": "completed"}))
    data = load_run(run)
    assert data.t0 == T0 - 10
    assert data.rates["sent"].t == [15]


def test_node_memory_without_file_backed_pages_is_rss_minus_shared(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.process_csv.write_text("ts,node,role,pid,cpu_percent,rss_bytes,num_threads,read_bytes,write_bytes,"
                               "ctx_switches,shared_bytes\n"
                               f"{1_700_000_001},b0,broker,1,,500,1,0,0,0,200\n"
                               f"{1_700_000_002},b0,broker,1,10,900,1,0,0,0,\n")
    data = load_run(run)
    assert data.node_anon["b0"].values() == [300]  # the row without shared_bytes (an older run) has none
    assert data.node_rss["b0"].values() == [500, 900]
