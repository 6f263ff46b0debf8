from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.rundir import RunDir, create_run, write_meta
from reports.__main__ import main
from reports.render import fmt_secs, render_report
from reports.synthetic import SyntheticFault, write_synthetic_run

EXTERNAL = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    root = tmp_path_factory.mktemp("runs")
    return write_synthetic_run(root, seconds=90, faults=[
        SyntheticFault("kill-master", ("broker-a-0",), 30, 45), SyntheticFault("latency", ("ns-0",), 60, None)])


def test_report_is_one_self_contained_file(synthetic: RunDir) -> None:
    path = render_report(synthetic)
    html = path.read_text()
    assert path == synthetic.report
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, re.I)  # every script is inline
    assert html.count("* plotly.js v") == 1  # the library banner: inlined exactly once
    assert html.count("Plotly.newPlot(") == 10
    assert len(html) < 8 * 2**20


def test_report_sections_and_figures(synthetic: RunDir) -> None:
    html = render_report(synthetic).read_text()
    for anchor in ("throughput", "latency", "nodes", "system", "events", "details"):
        assert f'id="{anchor}"' in html
    assert "no data" not in html.lower()
    assert "kill-master broker-a-0" in html and "(never healed)" in html
    assert ">completed<" in html
    # charts come before the tables: the first chart precedes the latency table
    assert html.index("chart-throughput") < html.index("<th class=\"l\">request type</th>")


def test_missing_inputs_render_no_data_notes(tmp_path: Path) -> None:
    run = create_run("bare", tmp_path)
    write_meta(run, {"name": "bare", "status": "failed"})
    html = render_report(run).read_text()
    assert html.count('class="nodata"') == 1 + 1 + 1 + 3 + 4 + 1  # tps, latency x2, nodes x3, system x4, events
    assert "no Locust statistics" in html and "Plotly.newPlot(" not in html
    assert html.count("* plotly.js v") == 1


def test_history_fields_are_escaped(tmp_path: Path) -> None:
    run = create_run("esc", tmp_path)
    run.history.write_text(json.dumps({"ts": 1.0, "mono": 1.0, "event": "fault-inject",
                                       "fault": "<script>alert(1)</script>", "targets": ["n"]}) + "\n")
    run.process_csv.write_text("ts,node,role,pid,cpu_percent,rss_bytes\n1,n,<b>x</b>,1,,5\n2,n,<b>x</b>,1,3,5\n")
    html = render_report(run).read_text()
    assert "Plotly.newPlot(" in html  # the fault also reaches the charts' annotations
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_cli_renders_latest_to_a_chosen_file(synthetic: RunDir, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["latest", "--root", str(synthetic.path.parent.parent), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.stat().st_size > 1000


def test_cli_reports_an_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["missing", "--root", str(tmp_path)]) == 2
    assert "no run found" in capsys.readouterr().err


@pytest.mark.parametrize("secs, text", [(0, "0m 00s"), (61.4, "1m 01s"), (3725, "1h 02m 05s"), (None, "–")])
def test_fmt_secs(secs: float | None, text: str) -> None:
    assert fmt_secs(secs) == text
