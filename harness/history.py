"""The run history: an append-only JSONL record of what happened when.

Each line is one event: ``{"ts": epoch seconds, "mono": time.monotonic(), "event": name, ...fields}``.
``ts`` lines events up with metrics and Locust's per-second counts (both use the wall clock); ``mono``
orders and spaces events exactly even if the wall clock is stepped during a run.
Each line is flushed as it is written, so a crash loses at most the line being written, and the reader
drops such a truncated last line.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from harness.errors import HarnessError

logger = logging.getLogger(__name__)

RUN_STARTED = "run-started"
CLUSTER_READY = "cluster-ready"
LOAD_STARTED = "load-started"
LOAD_STOPPED = "load-stopped"
CLUSTER_DOWN = "cluster-down"
RUN_FINISHED = "run-finished"
FAULT_INJECT = "fault-inject"
"""Fields: ``fault`` (registry name), ``targets`` (node ids); optional ``id`` to pair it with its heal."""
FAULT_HEAL = "fault-heal"
"""Same fields as the inject it ends."""

_RESERVED = frozenset({"ts", "mono", "event"})


class HistoryError(HarnessError):
    """The history file is damaged somewhere other than its last line."""


class History:
    """Thread-safe append-only writer of ``history.jsonl``. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._mono = mono
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return it as written. Values JSON cannot hold are written as strings."""
        clash = _RESERVED.intersection(fields)
        if clash:
            raise ValueError(f"history fields {sorted(clash)} are reserved")
        with self._lock:
            if self._file is None:
                raise HistoryError(f"{self.path}: history already closed; cannot record {event!r}")
            entry = {"ts": self._clock(), "mono": self._mono(), "event": event, **fields}
            self._file.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
            self._file.flush()
        return entry

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_history(path: Path) -> list[dict[str, Any]]:
    """All events of a history file, in file order.

    A last line that does not parse is what a crash mid-write leaves: it is dropped with a warning. A bad
    line anywhere else means the file was damaged otherwise, and raises :class:`HistoryError`."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = _parse(line)
        if entry is None:
            if number == len(lines):
                logger.warning("%s: dropping truncated last line %d", path, number)
                break
            raise HistoryError(f"{path}:{number}: not a JSON event object")
        events.append(entry)
    return events


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or "event" not in entry:
        return None
    return entry
