"""Whole-machine metrics (psutil) into ``metrics/system.csv``.

Disk and network counters are cumulative, so each row holds the rate since the previous sweep, measured
over the monotonic time between the two reads. Network bytes are the sum over every interface, loopback
included: the embedded cluster talks over 127.0.0.x, so ``lo`` is where its traffic is (psutil has no
per-process network counters). Inside a container the disk counters are the host's.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.metrics import PeriodicCsvSampler, Row, rate

SYSTEM_HEADER = ("ts", "cpu_percent", "mem_used_bytes", "mem_available_bytes", "disk_read_bytes_per_s",
                 "disk_write_bytes_per_s", "net_sent_bytes_per_s", "net_recv_bytes_per_s", "load1")


@dataclass(frozen=True)
class _Counters:
    mono: float
    disk_read: int | None
    disk_write: int | None
    net_sent: int
    net_recv: int


class SystemSampler(PeriodicCsvSampler):
    """System CPU (0-100 over all CPUs), memory, disk and network rates, 1-minute load average."""

    header = SYSTEM_HEADER

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        super().__init__(path, interval, name="system-sampler")
        self._prev: _Counters | None = None

    def sweep(self, ts: float) -> Sequence[Row]:
        # cpu_percent(None) compares with the previous call; the first one is meaningless (see process.py).
        cpu = psutil.cpu_percent(None)
        now = _read_counters()
        prev, self._prev = self._prev, now
        mem = psutil.virtual_memory()
        row: Row = [round(ts, 3), round(cpu, 1) if prev else None, mem.used, mem.available]
        row += _rates(prev, now)
        row.append(round(os.getloadavg()[0], 2))
        return [row]


def _read_counters() -> _Counters:
    disk = psutil.disk_io_counters()  # None on machines without block devices
    net = psutil.net_io_counters()
    return _Counters(time.monotonic(), disk.read_bytes if disk else None, disk.write_bytes if disk else None,
                     net.bytes_sent, net.bytes_recv)


def _rates(prev: _Counters | None, now: _Counters) -> list[float | None]:
    if prev is None:
        return [None, None, None, None]
    dt = now.mono - prev.mono
    pairs = ((now.disk_read, prev.disk_read), (now.disk_write, prev.disk_write),
             (now.net_sent, prev.net_sent), (now.net_recv, prev.net_recv))
    return [_round(rate(cur, old, dt)) for cur, old in pairs]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
