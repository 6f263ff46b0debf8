"""stop_together: a group of processes stopped at once, SIGKILL for those that ignore SIGTERM."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from cluster.local.stopping import running, stop_together

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def test_a_group_stops_together_and_the_stubborn_one_is_killed() -> None:
    polite = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)]
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "ready"
    procs = polite + [stubborn]
    started = time.monotonic()
    count = stop_together([(p.pid, psutil.Process(p.pid).create_time()) for p in procs], timeout=1.0)
    took = time.monotonic() - started
    assert count == 4 and not any(running(psutil.Process(p.pid)) for p in procs if psutil.pid_exists(p.pid))
    assert 1.0 <= took < 5.0  # one shared timeout, not one per process
    for p in procs:
        p.wait(5)
    assert stubborn.returncode == -9 and {p.returncode for p in polite} == {-15}


def test_a_reused_pid_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stop_together([(proc.pid, psutil.Process(proc.pid).create_time() - 100)], timeout=1.0) == 0
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
