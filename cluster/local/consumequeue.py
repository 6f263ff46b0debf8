"""Consume queues: per topic and queue id, one 20-byte unit per message, in queue-offset order.

A unit is RocketMQ's: commit-log position (i64), record size (i32), tags hash code (i64). Unit ``n`` is the
message at queue offset ``n``. The file is memory-mapped and grown in steps; the valid units are a prefix
(a written unit never has size 0), so the count is found by binary search on open. Consume queues are
derived data: the store checks them against the commit log on open and re-dispatches what is missing.
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

UNIT = struct.Struct(">qiq")
UNIT_SIZE = UNIT.size
_INITIAL_UNITS = 4096
_MAX_GROWTH_UNITS = 1 << 20


class ConsumeQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The map keeps its own descriptor; holding ours too would cost two per queue, and a broker with a
        # thousand queues would run out under the usual 1024-descriptor limit.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size < _INITIAL_UNITS * UNIT_SIZE:
                size = _INITIAL_UNITS * UNIT_SIZE
                os.ftruncate(fd, size)
            self._mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._capacity = size // UNIT_SIZE
        self.count = self._find_count()
        self.dirty = False

    def _find_count(self) -> int:
        lo, hi = 0, self._capacity  # invariant: units below lo are valid, units from hi on are empty
        while lo < hi:
            mid = (lo + hi) // 2
            if UNIT.unpack_from(self._mm, mid * UNIT_SIZE)[1] > 0:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @property
    def max_offset(self) -> int:
        """The next queue offset to be written (RocketMQ's max offset)."""
        return self.count

    def append(self, position: int, size: int, tags_code: int) -> None:
        if self.count == self._capacity:
            self._grow()
        UNIT.pack_into(self._mm, self.count * UNIT_SIZE, position, size, tags_code)
        self.count += 1
        self.dirty = True

    def _grow(self) -> None:
        self._capacity += min(self._capacity, _MAX_GROWTH_UNITS)
        self._mm.resize(self._capacity * UNIT_SIZE)

    def unit(self, offset: int) -> tuple[int, int, int]:
        """(position, size, tags code) of the message at ``offset``; the caller keeps offset < count."""
        return UNIT.unpack_from(self._mm, offset * UNIT_SIZE)  # type: ignore[return-value]

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` units (zeroed after, so the count survives a reopen)."""
        if count >= self.count:
            return
        start = count * UNIT_SIZE
        self._mm[start:self.count * UNIT_SIZE] = bytes(self.count * UNIT_SIZE - start)
        self.count = count
        self.dirty = True

    def flush(self) -> None:
        """fsync (through a short-lived descriptor: the page cache is per file, not per descriptor)."""
        if self.dirty:
            self.dirty = False
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        self.flush()
        self._mm.close()
