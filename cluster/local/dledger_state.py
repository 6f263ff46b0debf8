"""What a Raft member keeps besides its log: the persisted term and vote, and an in-memory tail of the log.

The term and vote must survive a crash, or a restarted node could vote twice in one term and two leaders
could be elected. They are written to a temporary file, fsynced, renamed over the old file and the directory
is fsynced, all before the node answers a vote or acts on a new term.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster.local.commitlog import Entry

logger = logging.getLogger(__name__)

STATE_FILE = "raft-state.json"


@dataclass(frozen=True)
class TermVote:
    term: int = 0
    voted_for: str | None = None


class PersistentState:
    """The current term and the vote cast in it, durable on disk."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = Path(state_dir)
        self._path = self._dir / STATE_FILE
        self.current = TermVote()

    def load(self) -> TermVote:
        """Read the stored term and vote; a missing file means a fresh node (term 0, no vote)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():
            self.current = TermVote()
            return self.current
        raw = json.loads(self._path.read_text())
        voted = raw.get("votedFor")
        self.current = TermVote(int(raw.get("term", 0)), None if voted is None else str(voted))
        return self.current

    def save(self, term: int, voted_for: str | None) -> None:
        """Atomically replace the stored term and vote (write, fsync, rename, fsync the directory)."""
        if TermVote(term, voted_for) == self.current:
            return
        tmp = self._path.with_suffix(".tmp")
        data = json.dumps({"term": term, "votedFor": voted_for}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must be durable, not only the file's bytes
        finally:
            os.close(dir_fd)
        self.current = TermVote(term, voted_for)


class TailCache:
    """The most recent entries the leader appended, so pushes to followers that keep up never read the
    commit log back. Bounded by bytes; a follower that fell further behind is served from the log."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._max = max_bytes
        self._entries: list[Entry] = []
        self._head = 0  # entries before this offset are evicted; the list is compacted now and then
        self._bytes = 0

    def add(self, entries: list[Entry]) -> None:
        if not entries:
            return
        if self._head < len(self._entries) and entries[0].index != self._entries[-1].index + 1:
            self.clear()  # not contiguous (should not happen): start over rather than serve wrong data
        self._entries.extend(entries)
        self._bytes += sum(len(e.payload) + 64 for e in entries)
        while self._bytes > self._max and self._head < len(self._entries) - 1:
            self._bytes -= len(self._entries[self._head].payload) + 64
            self._head += 1
        if self._head > 4096 and self._head * 2 > len(self._entries):
            del self._entries[:self._head]
            self._head = 0

    def get(self, index: int, max_bytes: int, max_count: int) -> list[Entry] | None:
        """Entries from ``index`` on, or None when ``index`` is not cached (ask the log instead)."""
        if self._head >= len(self._entries):
            return None
        first = self._entries[self._head].index
        if index < first or index > self._entries[-1].index:
            return None
        start = self._head + index - first
        out: list[Entry] = []
        size = 0
        for entry in self._entries[start:start + max_count]:
            size += len(entry.payload)
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def truncate_from(self, index: int) -> None:
        while len(self._entries) > self._head and self._entries[-1].index >= index:
            self._bytes -= len(self._entries.pop().payload) + 64

    def clear(self) -> None:
        self._entries = []
        self._head = 0
        self._bytes = 0
