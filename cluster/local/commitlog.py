"""The commit log: an append-only sequence of entries (index, term, payload), usable as a Raft log.

On disk an entry is a 28-byte header (magic u32, total size i32, index i64, term i64, payload crc i32)
followed by the payload. Positions form one continuous byte space across segment files: a segment is
named by the position of its first byte and ends at an entry boundary, with no padding. A position
therefore depends only on the entries before it, so two replicas holding the same entries agree on every
position (a message's PHYSICALOFFSET is the same on the leader and its followers).

Segments are memory-mapped, pre-sized (sparse) files. A write is a copy into the mapping, so an appended
entry is in the page cache at once and survives the death of the process; ``flush`` (fsync) makes it
survive the machine, and is run on a timer (RocketMQ's ASYNC_FLUSH) and on close.
"""
from __future__ import annotations

import bisect
import logging
import mmap
import os
import struct
import threading
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAGIC = 0xD1ED6E12
HEADER = struct.Struct(">IiqqI")  # magic, total size, index, term, payload crc32 (same bytes as an i32)
HEADER_SIZE = HEADER.size
_NAME_DIGITS = 20
#: Segments whose payloads get their CRC checked on open (older ones only get their headers checked):
#: only recently written pages can be missing after a crash.
_CRC_CHECKED_SEGMENTS = 2


@dataclass(frozen=True)
class Entry:
    index: int
    term: int
    payload: bytes
    #: Byte offset of the payload in the log.
    position: int


class CommitLogError(ValueError):
    """A request the log cannot satisfy (non-contiguous index, read outside the log)."""


class _Segment:
    """One mapped file: ``start`` is the log position of its first byte, ``end`` the bytes written in it."""

    def __init__(self, path: Path, start: int, capacity: int | None) -> None:
        self.path = path
        self.start = start
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if capacity is not None:
            os.ftruncate(self.fd, capacity)
        self.capacity = os.fstat(self.fd).st_size
        self.mm = mmap.mmap(self.fd, self.capacity)
        self.end = 0
        self.dirty = False

    def clear_from(self, local: int) -> None:
        """Zero everything from ``local`` on (cheaply: shrink and regrow the sparse file)."""
        self.mm.close()
        os.ftruncate(self.fd, local)
        os.ftruncate(self.fd, self.capacity)
        self.mm = mmap.mmap(self.fd, self.capacity)
        self.end = local

    def grow(self, capacity: int) -> None:
        self.mm.resize(capacity)
        self.capacity = capacity

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


class CommitLog:
    """Entries with contiguous indexes from 1; see the module docstring for the layout."""

    def __init__(self, directory: Path, segment_size: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_size = segment_size
        self._segments: list[_Segment] = []
        self._starts = array("q")  # header position of entry i + 1
        self._term_first: list[int] = []  # run-length terms: first index of each run ...
        self._term_value: list[int] = []  # ... and its term
        self._end = 0  # where the next header goes
        self._lock = threading.Lock()  # guards the segment list against flush() running in a thread
        self._recover()

    # ------------------------------------------------------------------ state
    @property
    def last_index(self) -> int:
        return len(self._starts)

    @property
    def last_term(self) -> int:
        return self._term_value[-1] if self._term_value else 0

    @property
    def end_position(self) -> int:
        """One past the last byte written."""
        return self._end

    def term_at(self, index: int) -> int | None:
        """The term of entry ``index``; 0 for index 0 (before the first entry), None outside the log."""
        if index == 0:
            return 0
        if index < 0 or index > self.last_index:
            return None
        return self._term_value[bisect.bisect_right(self._term_first, index) - 1]

    def position_of(self, index: int) -> int:
        """Payload position of entry ``index``."""
        self._check_index(index)
        return self._starts[index - 1] + HEADER_SIZE

    def index_at_position(self, position: int) -> int | None:
        """The index of the entry whose payload starts exactly at ``position``, else None."""
        i = bisect.bisect_left(self._starts, position - HEADER_SIZE)
        if i < len(self._starts) and self._starts[i] == position - HEADER_SIZE:
            return i + 1
        return None

    def position_of_next_payload(self) -> int:
        return self._end + HEADER_SIZE

    # ------------------------------------------------------------------ writes
    def append(self, payloads: list[bytes], term: int) -> list[Entry]:
        """Leader (or single replica) append: indexes follow last_index."""
        entries = []
        index = self.last_index
        for payload in payloads:
            index += 1
            position = self._write(index, term, payload)
            entries.append(Entry(index, term, payload, position))
        return entries

    def append_entries(self, entries: list[tuple[int, int, bytes]]) -> None:
        """Follower append of (index, term, payload), contiguous after last_index."""
        for index, term, payload in entries:
            if index != self.last_index + 1:
                raise CommitLogError(f"entry {index} does not follow last index {self.last_index}")
            self._write(index, term, payload)

    def _write(self, index: int, term: int, payload: bytes) -> int:
        size = HEADER_SIZE + len(payload)
        seg = self._segment_for(size)
        local = seg.end
        HEADER.pack_into(seg.mm, local, MAGIC, size, index, term, zlib.crc32(payload))
        seg.mm[local + HEADER_SIZE:local + size] = payload
        seg.end = local + size
        seg.dirty = True
        self._starts.append(self._end)
        if not self._term_value or self._term_value[-1] != term:
            self._term_first.append(index)
            self._term_value.append(term)
        self._end += size
        return self._end - len(payload)

    def _segment_for(self, size: int) -> _Segment:
        seg = self._segments[-1] if self._segments else None
        if seg is not None and seg.end + size <= seg.capacity:
            return seg
        if seg is not None and seg.end == 0:
            seg.grow(size)  # an entry bigger than a whole segment gets a segment of its own size
            return seg
        seg = self._new_segment(self._end, max(self.segment_size, size))
        return seg

    def _new_segment(self, start: int, capacity: int | None) -> _Segment:
        seg = _Segment(self.directory / f"{start:0{_NAME_DIGITS}d}", start, capacity)
        with self._lock:
            self._segments.append(seg)
        return seg

    def truncate_from(self, index: int) -> None:
        """Drop entry ``index`` and everything after it (a follower's conflicting suffix)."""
        if index > self.last_index:
            return
        if index < 1:
            raise CommitLogError(f"cannot truncate from index {index}; indexes start at 1")
        position = self._starts[index - 1]
        with self._lock:
            while len(self._segments) > 1 and self._segments[-1].start > position:
                dropped = self._segments.pop()
                dropped.close()
                dropped.path.unlink()
            seg = self._segments[-1]
            seg.clear_from(position - seg.start)
        del self._starts[index - 1:]
        cut = bisect.bisect_left(self._term_first, index)
        del self._term_first[cut:], self._term_value[cut:]
        self._end = position
        logger.info("commit log truncated from index %s (position %s)", index, position)

    # ------------------------------------------------------------------ reads
    def read(self, position: int, size: int) -> bytes:
        """``size`` bytes at ``position``; the range must lie inside one entry's segment."""
        if position < 0 or size < 0 or position + size > self._end:
            raise CommitLogError(f"read of {size} bytes at {position} is outside the log (end {self._end})")
        seg = self._segment_at(position)
        local = position - seg.start
        if local + size > seg.end:
            raise CommitLogError(f"read of {size} bytes at {position} crosses a segment boundary")
        return seg.mm[local:local + size]

    def _segment_at(self, position: int) -> _Segment:
        segs = self._segments
        last = segs[-1]
        if position >= last.start:
            return last
        lo, hi = 0, len(segs) - 1
        while lo < hi:  # the last segment whose start <= position
            mid = (lo + hi + 1) // 2
            if segs[mid].start <= position:
                lo = mid
            else:
                hi = mid - 1
        return segs[lo]

    def entry(self, index: int) -> Entry:
        self._check_index(index)
        start = self._starts[index - 1]
        end = self._starts[index] if index < len(self._starts) else self._end
        payload = self.read(start + HEADER_SIZE, end - start - HEADER_SIZE)
        return Entry(index, self.term_at(index) or 0, payload, start + HEADER_SIZE)

    def entries_from(self, index: int, max_bytes: int, max_count: int = 1000) -> list[Entry]:
        """Entries from ``index`` on: at most ``max_count``, and at most ``max_bytes`` of payload unless the
        first entry alone is bigger (a replica must always be able to make progress)."""
        out: list[Entry] = []
        total = 0
        for i in range(max(index, 1), min(self.last_index, index + max_count - 1) + 1):
            entry = self.entry(i)
            if out and total + len(entry.payload) > max_bytes:
                break
            out.append(entry)
            total += len(entry.payload)
        return out

    def _check_index(self, index: int) -> None:
        if index < 1 or index > self.last_index:
            raise CommitLogError(f"index {index} is outside the log (1..{self.last_index})")

    # ------------------------------------------------------------------ durability
    def flush(self) -> None:
        """fsync every segment written since the last flush; safe to call from a worker thread.

        The lock only guards the snapshot: holding it through the fsync would stall the event loop the
        next time it rolls a segment."""
        with self._lock:
            dirty = [seg for seg in self._segments if seg.dirty]
        for seg in dirty:
            seg.dirty = False
            try:
                seg.sync()
            except OSError:  # truncate_from closed the segment meanwhile: nothing left to sync
                pass

    def close(self) -> None:
        self.flush()
        with self._lock:
            for seg in self._segments:
                seg.close()
            self._segments.clear()

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> None:
        names = sorted(p for p in self.directory.iterdir() if p.name.isdigit() and len(p.name) == _NAME_DIGITS)
        for n, path in enumerate(names):
            start = int(path.name)
            if path.stat().st_size == 0:  # created, never sized: a crash inside _new_segment
                path.unlink()
                continue
            if start != self._end:
                logger.warning("commit log segment %s does not continue at %s; dropping it", path.name, self._end)
                path.unlink()
                continue
            seg = self._new_segment(start, None)
            complete = self._scan(seg, verify_crc=n >= len(names) - _CRC_CHECKED_SEGMENTS)
            if not complete:  # a torn or stale tail: nothing after it can be trusted
                seg.clear_from(seg.end)
        if self._segments:
            last = self._segments[-1]
            last.clear_from(last.end)  # stale bytes past the end could otherwise be read back as entries
        logger.info("commit log opened: %s entries, %s bytes, %s segments",
                    self.last_index, self._end, len(self._segments))

    def _scan(self, seg: _Segment, verify_crc: bool) -> bool:
        """Index every valid entry of ``seg``; False if it stopped at something that is not a clean end."""
        mm, local = seg.mm, 0
        while local + HEADER_SIZE <= seg.capacity:
            magic, size, index, term, crc = HEADER.unpack_from(mm, local)
            if magic == 0 and size == 0:
                break
            valid = (magic == MAGIC and size >= HEADER_SIZE and local + size <= seg.capacity
                     and index == self.last_index + 1)
            if valid and verify_crc:
                valid = zlib.crc32(mm[local + HEADER_SIZE:local + size]) == crc
            if not valid:
                logger.warning("commit log: torn entry at position %s of segment %s; truncating",
                               seg.start + local, seg.path.name)
                seg.end = local
                return False
            self._starts.append(seg.start + local)
            if not self._term_value or self._term_value[-1] != term:
                self._term_first.append(index)
                self._term_value.append(term)
            local += size
            self._end += size
        seg.end = local
        return True
