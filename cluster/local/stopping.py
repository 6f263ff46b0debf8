"""Stopping several processes at once, where "stopped" means "no longer running", not "reaped".

A node or proxy started by another process (``rmqh up`` that has exited, or the demo harness) is not our
child: its zombie lingers until its parent or init reaps it, which here took about 2 s per process. Waiting
for the pid to vanish (psutil's ``wait`` for a non-child) therefore cost ``rmqh down`` seconds per node.
A zombie has closed its sockets and files, so it counts as stopped; signalling a group together also
lets its members shut down in parallel.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Sequence

import psutil

KILL_WAIT = 10.0


def stop_together(procs: Sequence[tuple[int, float | None]], timeout: float) -> int:
    """SIGTERM every (pid, create_time) at once (SIGCONT first: a paused process cannot act on it), wait up
    to ``timeout``, then SIGKILL what is left. A pid whose create time differs was reused: left alone.
    Returns how many processes were running."""
    live = [p for p in (_process(pid, created) for pid, created in procs) if p is not None]
    if timeout > 0:
        for proc in live:
            _signal(proc, signal.SIGCONT)
            _signal(proc, signal.SIGTERM)
        _wait_stopped(live, timeout)
    left = [p for p in live if running(p)]
    for proc in left:
        _signal(proc, signal.SIGKILL)
    _wait_stopped(left, KILL_WAIT)
    return len(live)


def running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _process(pid: int, created: float | None) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) >= 0.01:
            return None
        return proc if running(proc) else None
    except psutil.NoSuchProcess:
        return None


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def _wait_stopped(procs: Sequence[psutil.Process], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.02)
