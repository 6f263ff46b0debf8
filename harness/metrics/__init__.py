"""Metric samplers: background threads that append one CSV row per subject per tick.

Terms: a *sample* is one row; a *sweep* is one tick's worth of rows (all nodes, or the whole system);
``ts`` is epoch seconds taken at the start of the sweep, so every row of a sweep shares it and lines up
with Locust's epoch-second counts and the history's ``ts``. An empty cell means "not measurable" (the first
sweep of a rate or of cpu_percent, a counter we may not read), never zero.

:class:`PeriodicCsvSampler` owns the thread, the tick schedule and the file; subclasses only say what
one sweep produces (:mod:`harness.metrics.process`, :mod:`harness.metrics.system`).
"""
from __future__ import annotations

import csv
import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Sequence

logger = logging.getLogger(__name__)

Cell = str | int | float | None
Row = list[Cell]


class PeriodicCsvSampler:
    """Runs :meth:`sweep` every ``interval`` seconds on a daemon thread and appends its rows to ``path``."""

    header: tuple[str, ...] = ()

    def __init__(self, path: Path, interval: float = 1.0, name: str = "sampler") -> None:
        if interval <= 0:
            raise ValueError(f"{name}: interval must be > 0, got {interval}")
        self.path = Path(path)
        self.interval = interval
        self.name = name
        self.sweeps = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._writer: Any = None  # a csv writer; typeshed's type for it is private
        self._io_lock = threading.Lock()

    # -- what subclasses provide
    def sweep(self, ts: float) -> Sequence[Row]:
        """Measure once and return the rows (without writing them)."""
        raise NotImplementedError

    # -- lifecycle
    def start(self) -> None:
        """Open the CSV (appending; the header only goes into an empty file) and start ticking."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._open()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking, join the thread and close the file. Idempotent, safe before :meth:`start`."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s: thread did not stop within %.1f s", self.name, timeout)
        self._close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> PeriodicCsvSampler:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def sample_once(self, ts: float | None = None) -> Sequence[Row]:
        """One sweep, written and flushed; what the thread does each tick (also handy in tests)."""
        rows = self.sweep(time.time() if ts is None else ts)
        with self._io_lock:
            if self._writer is None:
                self._open_locked()
            assert self._writer is not None and self._file is not None
            self._writer.writerows(rows)
            # One flush per sweep: readers (a live report, a crash post-mortem) see whole sweeps.
            self._file.flush()
        self.sweeps += 1
        return rows

    # -- internals
    def _run(self) -> None:
        # Ticks sit on a fixed grid (start + k*interval) so rows do not drift; a tick that overran the
        # next one is skipped rather than bunched up.
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self._tick()
            next_tick += self.interval
            now = time.monotonic()
            if next_tick < now:
                next_tick = now + self.interval - (now - next_tick) % self.interval
            self._stop.wait(next_tick - now)

    def _tick(self) -> None:
        try:
            self.sample_once()
        except Exception:  # a sampler must never end a run; count it and keep ticking
            self.errors += 1
            if self.errors <= 3:
                logger.exception("%s: sweep failed", self.name)

    def _open(self) -> None:
        with self._io_lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if fresh:
            self._writer.writerow(self.header)
            self._file.flush()

    def _close(self) -> None:
        with self._io_lock:
            if self._file is not None:
                self._file.close()
            self._file = None
            self._writer = None


def rate(current: float | None, previous: float | None, seconds: float) -> float | None:
    """Per-second rate between two readings of a cumulative counter; None when unknown or the counter
    went backwards (a reset or a wrap: better a gap in the chart than a huge negative spike)."""
    if current is None or previous is None or seconds <= 0 or current < previous:
        return None
    return (current - previous) / seconds
