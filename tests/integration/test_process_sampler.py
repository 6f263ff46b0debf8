"""The samplers against real processes: a busy loop, an idle sleeper, a killed child, a restart."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from harness.metrics.process import PROCESS_HEADER, ProcessSampler
from harness.metrics.system import SYSTEM_HEADER, SystemSampler
from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BUSY = "while True: pass"
IDLE = "import time; time.sleep(120)"
Spawn = Callable[[str], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start child Pythons; all are killed and reaped at teardown, whatever the test did."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(code: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-c", code])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def cpu_values(path: Path, node: str) -> list[float]:
    return [float(r["cpu_percent"]) for r in rows(path) if r["node"] == node and r["cpu_percent"]]


def test_busy_beats_idle_and_first_cpu_is_blank(tmp_path: Path, spawn: Spawn) -> None:
    busy, idle = spawn(BUSY), spawn(IDLE)
    out = tmp_path / "process.csv"
    sampler = ProcessSampler(out, {"busy": ("broker", busy.pid), "idle": ("namesrv", idle.pid)}, interval=0.2)
    sampler.start()
    try:
        wait_until(lambda: len(cpu_values(out, "busy")) >= 4 and len(cpu_values(out, "idle")) >= 4,
                   timeout=20, message="four cpu samples per node")
    finally:
        sampler.stop()
    table = rows(out)
    assert tuple(table[0].keys()) == PROCESS_HEADER
    first = {r["node"]: r for r in reversed(table)}  # reversed: the dict keeps each node's first row
    assert first["busy"]["cpu_percent"] == "" and first["idle"]["cpu_percent"] == ""
    busy_cpu, idle_cpu = cpu_values(out, "busy"), cpu_values(out, "idle")
    assert sum(busy_cpu) / len(busy_cpu) > 30, busy_cpu
    assert sum(busy_cpu) / len(busy_cpu) > 5 * max(1.0, sum(idle_cpu) / len(idle_cpu)), (busy_cpu, idle_cpu)
    r = table[-1]
    assert int(r["rss_bytes"]) > 1_000_000 and int(r["num_threads"]) >= 1 and int(r["ctx_switches"]) >= 0
    assert r["pid"] in (str(busy.pid), str(idle.pid))
    assert sampler.errors == 0


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_killed_process_is_dropped_without_crashing(tmp_path: Path, spawn: Spawn, reap: bool) -> None:
    victim, other = spawn(IDLE), spawn(IDLE)
    out = tmp_path / "process.csv"
    sampler = ProcessSampler(out, {"victim": ("broker", victim.pid), "other": ("broker", other.pid)}, interval=0.1)
    sampler.start()
    try:
        wait_until(lambda: sum(r["node"] == "victim" for r in rows(out)) >= 2, timeout=10, message="victim rows")
        victim.send_signal(signal.SIGKILL)
        if reap:
            victim.wait(10)
        else:  # left unreaped, the child stays a zombie that psutil can still find
            wait_until(lambda: psutil.Process(victim.pid).status() == psutil.STATUS_ZOMBIE, timeout=10,
                       message="zombie")
        before = sampler.sweeps
        wait_until(lambda: sampler.sweeps >= before + 5, timeout=10, message="five more sweeps")
        victim_rows = sum(r["node"] == "victim" for r in rows(out))
        wait_until(lambda: sampler.sweeps >= before + 8, timeout=10, message="eight more sweeps")
        assert sum(r["node"] == "victim" for r in rows(out)) == victim_rows  # no new rows for the dead pid
        assert sampler.running and sampler.errors == 0
        assert rows(out)[-1]["node"] == "other"  # the rest keeps being sampled
    finally:
        sampler.stop()


def test_restarted_node_is_followed_under_its_new_pid(tmp_path: Path, spawn: Spawn) -> None:
    first = spawn(IDLE)
    out = tmp_path / "process.csv"
    sampler = ProcessSampler(out, {"b": ("master", first.pid)}, interval=0.1)
    sampler.start()
    try:
        wait_until(lambda: any(r["pid"] == str(first.pid) for r in rows(out)), timeout=10, message="first pid")
        first.kill()
        first.wait(10)
        second = spawn(BUSY)
        sampler.update_node("b", "slave", second.pid)
        wait_until(lambda: [r for r in rows(out) if r["pid"] == str(second.pid) and r["cpu_percent"]],
                   timeout=10, message="rows with cpu for the new pid")
    finally:
        sampler.stop()
    new = [r for r in rows(out) if r["pid"] == str(second.pid)]
    assert new[0]["cpu_percent"] == "" and new[0]["role"] == "slave"  # a new process needs a fresh baseline


def test_unchanged_pid_keeps_its_baseline_across_set_nodes(tmp_path: Path) -> None:
    sampler = ProcessSampler(tmp_path / "p.csv", {"me": ("harness", os.getpid())})
    sampler.sample_once()
    sampler.set_nodes({"me": ("harness", os.getpid()), "gone": ("broker", 2**22 + 12345)})
    second = {r[1]: r for r in sampler.sample_once()}
    sampler.stop()
    assert second["me"][4] is not None  # still primed, so a real cpu figure
    assert "gone" not in second  # a pid that does not exist gives no row, and no exception


def test_stop_is_prompt_idempotent_and_safe_before_start(tmp_path: Path) -> None:
    never = ProcessSampler(tmp_path / "never.csv", {})
    never.stop()
    sampler = ProcessSampler(tmp_path / "p.csv", {"me": ("harness", os.getpid())}, interval=30)
    sampler.start()
    wait_until(lambda: sampler.sweeps >= 1, timeout=10, message="first sweep")
    t = time.monotonic()
    sampler.stop()
    assert time.monotonic() - t < 1.0  # does not wait out the 30 s tick
    assert not sampler.running
    sampler.stop()


def test_appending_to_an_existing_csv_writes_one_header(tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    for _ in range(2):
        s = ProcessSampler(out, {"me": ("harness", os.getpid())})
        s.sample_once()
        s.stop()
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(PROCESS_HEADER) and len(lines) == 3


def test_system_sampler_rows(tmp_path: Path) -> None:
    out = tmp_path / "system.csv"
    sampler = SystemSampler(out, interval=0.1)
    sampler.start()
    try:
        wait_until(lambda: len(rows(out)) >= 3, timeout=10, message="three system rows")
    finally:
        sampler.stop()
    table = rows(out)
    assert tuple(table[0].keys()) == SYSTEM_HEADER
    assert table[0]["cpu_percent"] == "" and table[0]["net_sent_bytes_per_s"] == ""  # no baseline yet
    later = table[-1]
    assert 0 <= float(later["cpu_percent"]) <= 100
    assert int(later["mem_used_bytes"]) > 0 and int(later["mem_available_bytes"]) > 0
    assert float(later["net_recv_bytes_per_s"]) >= 0 and float(later["load1"]) >= 0
    ts = [float(r["ts"]) for r in table]
    assert ts == sorted(ts) and abs(ts[-1] - time.time()) < 60
