"""Per-node process metrics (psutil) into ``metrics/process.csv``.

``psutil.Process`` objects are kept between sweeps because ``cpu_percent()`` compares with the previous
call on the same object: the first call returns a meaningless 0.0, so the first row of each process has
an empty cpu_percent. A node that restarts gets a new pid through :meth:`ProcessSampler.set_nodes`; a pid
that dies is never re-attached on its own, because the kernel may hand the same pid to an unrelated
process (psutil notices that through the create time, which :meth:`psutil.Process.is_running` compares).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.metrics import PeriodicCsvSampler, Row

logger = logging.getLogger(__name__)

PROCESS_HEADER = ("ts", "node", "role", "pid", "cpu_percent", "rss_bytes", "num_threads",
                  "read_bytes", "write_bytes", "ctx_switches", "shared_bytes")
NodeSet = Mapping[str, tuple[str, int]]
"""node id -> (role, pid)."""


@dataclass
class _Tracked:
    role: str
    pid: int
    proc: psutil.Process | None = None
    primed: bool = False
    gone: bool = False
    io_denied: bool = False
    notes: set[str] = field(default_factory=set)


class ProcessSampler(PeriodicCsvSampler):
    """Samples every node's process once per ``interval`` seconds; see the module docstring."""

    header = PROCESS_HEADER

    def __init__(self, path: Path, nodes: NodeSet | None = None, interval: float = 1.0) -> None:
        super().__init__(path, interval, name="process-sampler")
        self._nodes_lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self.set_nodes(nodes or {})

    def set_nodes(self, nodes: NodeSet) -> None:
        """Replace the node set. Nodes whose pid is unchanged keep their Process object (and cpu baseline);
        a new pid (a restart) starts over; nodes no longer listed stop being sampled."""
        with self._nodes_lock:
            old = self._tracked
            fresh: dict[str, _Tracked] = {}
            for node, (role, pid) in nodes.items():
                kept = old.get(node)
                if kept is not None and kept.pid == pid:
                    kept.role = role
                    fresh[node] = kept
                else:
                    fresh[node] = _Tracked(role=role, pid=int(pid))
            self._tracked = fresh

    def update_node(self, node: str, role: str, pid: int) -> None:
        """Add or replace one node (e.g. after a restart), leaving the others alone."""
        with self._nodes_lock:
            nodes = {n: (t.role, t.pid) for n, t in self._tracked.items()}
        nodes[node] = (role, pid)
        self.set_nodes(nodes)

    def sweep(self, ts: float) -> Sequence[Row]:
        with self._nodes_lock:
            tracked = list(self._tracked.items())
        rows = []
        for node, tr in tracked:
            row = self._sample(node, tr, ts)
            if row is not None:
                rows.append(row)
        return rows

    def _sample(self, node: str, tr: _Tracked, ts: float) -> Row | None:
        if tr.gone:
            return None
        try:
            proc = self._attach(tr)
            with proc.oneshot():
                if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.NoSuchProcess(tr.pid)
                return self._read(node, tr, proc, ts)
        except psutil.NoSuchProcess:  # includes ZombieProcess
            self._note(node, tr, "gone", "%s: pid %d is gone; waiting for a new pid", node, tr.pid)
            tr.gone = True
        except psutil.AccessDenied:
            self._note(node, tr, "denied", "%s: no access to pid %d; not sampled", node, tr.pid)
        return None

    @staticmethod
    def _attach(tr: _Tracked) -> psutil.Process:
        if tr.proc is None:
            tr.proc = psutil.Process(tr.pid)
        return tr.proc

    def _read(self, node: str, tr: _Tracked, proc: psutil.Process, ts: float) -> Row:
        cpu = proc.cpu_percent(None)
        cpu_cell = round(cpu, 1) if tr.primed else None
        tr.primed = True
        ctx = proc.num_ctx_switches()
        read_b, write_b = self._io(node, tr, proc)
        # shared = resident file-backed pages (on Linux): for a broker mostly its memory-mapped commit log,
        # page cache the kernel can drop, which is why the report shows RSS minus shared beside RSS.
        mem = proc.memory_info()
        return [round(ts, 3), node, tr.role, tr.pid, cpu_cell, mem.rss, proc.num_threads(),
                read_b, write_b, ctx.voluntary + ctx.involuntary, getattr(mem, "shared", None)]

    def _io(self, node: str, tr: _Tracked, proc: psutil.Process) -> tuple[int | None, int | None]:
        # /proc/<pid>/io needs ptrace rights; without them keep every other column rather than drop the row.
        if tr.io_denied:
            return None, None
        try:
            io = proc.io_counters()
        except (psutil.AccessDenied, AttributeError):
            tr.io_denied = True
            self._note(node, tr, "io", "%s: io counters of pid %d unreadable; leaving them empty", node, tr.pid)
            return None, None
        return io.read_bytes, io.write_bytes

    @staticmethod
    def _note(node: str, tr: _Tracked, key: str, msg: str, *args: object) -> None:
        # Log each condition once per tracked pid: at 1 Hz a dead node would otherwise flood the log.
        if key not in tr.notes:
            tr.notes.add(key)
            logger.info(msg, *args)
