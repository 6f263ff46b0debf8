"""Open a rendered report in headless Chromium (Playwright) with no network, and check the charts draw.

Needs the ``playwright`` Python package and a Chromium binary; it never downloads one. Set
``RMQH_CHROMIUM`` to use another binary than /usr/bin/chromium. The screenshot goes to /tmp/report.png
(``RMQH_REPORT_SCREENSHOT`` overrides) for a human look.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reports.render import render_report
from reports.synthetic import SyntheticFault, write_synthetic_run

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("RMQH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("RMQH_REPORT_SCREENSHOT", "/tmp/report.png"))

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed: `.venv/bin/pip install playwright` (no `playwright install` needed)")
if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set RMQH_CHROMIUM)",
                allow_module_level=True)


def test_report_renders_in_a_browser_offline(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, seconds=300, faults=[
        SyntheticFault("kill-master", ("broker-a-0",), 100, 130),
        SyntheticFault("partition-namesrv", ("ns-0", "ns-1"), 200, None)])
    report = render_report(run)
    errors: list[str] = []
    remote: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("request", lambda req: remote.append(req.url)
                    if not req.url.startswith(("file:", "data:", "blob:")) else None)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4",
                                   timeout=30_000)
            plots = page.locator(".js-plotly-plot").count()
            traces = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                   ".map(p => p.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length)")
            synced = _zoom_one_chart(page)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == [] and remote == []
    assert plots == 10 and all(n > 0 for n in traces), traces
    assert synced  # zooming the throughput chart moved the other time charts too


def _zoom_one_chart(page: Page) -> bool:
    page.evaluate("Plotly.relayout('chart-throughput', {'xaxis.range': [50, 150]})")
    page.wait_for_function("document.getElementById('chart-cpu').layout.xaxis.range[0] === 50", timeout=5_000)
    result = page.evaluate("document.getElementById('chart-system-net').layout.xaxis.range")
    page.evaluate("Plotly.relayout('chart-throughput', {'xaxis.autorange': true})")
    page.wait_for_function("document.getElementById('chart-cpu').layout.xaxis.range[0] === 0", timeout=5_000)
    return bool(result == [50, 150])
