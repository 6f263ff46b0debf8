"""Broker metadata kept next to the message store: topic configs, consumer offsets, runtime counters.

Topic configs and consumer offsets are JSON files written atomically (temp file, fsync, rename), the
way RocketMQ keeps topics.json and consumerOffset.json.
"""
from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.remoting.codes import PERM_READ, PERM_WRITE


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=True).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class TopicConfig:
    """RocketMQ's TopicConfig; ``to_json`` gives its JSON field names."""

    topic_name: str
    read_queue_nums: int = 16
    write_queue_nums: int = 16
    perm: int = PERM_READ | PERM_WRITE
    topic_filter_type: str = "SINGLE_TAG"
    topic_sys_flag: int = 0
    order: bool = False

    @property
    def readable(self) -> bool:
        return bool(self.perm & PERM_READ)

    @property
    def writable(self) -> bool:
        return bool(self.perm & PERM_WRITE)

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "perm": self.perm, "readQueueNums": self.read_queue_nums,
                "topicFilterType": self.topic_filter_type, "topicName": self.topic_name,
                "topicSysFlag": self.topic_sys_flag, "writeQueueNums": self.write_queue_nums}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopicConfig:
        return cls(topic_name=str(data["topicName"]), read_queue_nums=int(data.get("readQueueNums", 16)),
                   write_queue_nums=int(data.get("writeQueueNums", 16)), perm=int(data.get("perm", 6)),
                   topic_filter_type=str(data.get("topicFilterType", "SINGLE_TAG")),
                   topic_sys_flag=int(data.get("topicSysFlag", 0)), order=bool(data.get("order", False)))


class TopicTable:
    """Topic configs with a DataVersion (counter + timestamp) that changes on every update."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = read_json(path) or {}
        self.topics: dict[str, TopicConfig] = {
            name: TopicConfig.from_json(cfg) for name, cfg in raw.get("topicConfigTable", {}).items()}
        version = raw.get("dataVersion") or {}
        self.version_counter = int(version.get("counter", 0))
        self.version_timestamp = int(version.get("timestamp", time.time() * 1000))

    def get(self, name: str) -> TopicConfig | None:
        return self.topics.get(name)

    def put(self, config: TopicConfig) -> None:
        """Create or replace a topic, bump the data version and persist at once (topics are rare)."""
        self.topics[config.topic_name] = config
        self.version_counter += 1
        self.version_timestamp = int(time.time() * 1000)
        self.persist()

    def data_version(self) -> dict[str, int]:
        return {"counter": self.version_counter, "timestamp": self.version_timestamp}

    def wrapper_json(self) -> dict[str, Any]:
        """TopicConfigSerializeWrapper: what REGISTER_BROKER and GET_ALL_TOPIC_CONFIG carry."""
        return {"topicConfigTable": {name: cfg.to_json() for name, cfg in self.topics.items()},
                "dataVersion": self.data_version()}

    def persist(self) -> None:
        write_json_atomic(self.path, self.wrapper_json())


class ConsumerOffsets:
    """Committed offsets: "group@topic" -> {queueId: offset}.

    The JSON snapshot is rewritten on the caller's timer (RocketMQ: every 5 s) and on close. Between
    snapshots every change is also appended to a journal with one unbuffered write, so an offset that was
    acknowledged survives the process being killed (the page cache keeps the write); opening replays the
    journal over the snapshot.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        raw = read_json(path) or {}
        self.table: dict[str, dict[int, int]] = {
            key: {int(q): int(o) for q, o in queues.items()} for key, queues in raw.get("offsetTable", {}).items()}
        self.dirty = self._replay_journal()  # replayed changes are not in the snapshot yet
        path.parent.mkdir(parents=True, exist_ok=True)
        self._journal = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        #: Told (key, queueId, offset) of every change a client made, e.g. to replicate it.
        self.on_change: Callable[[str, int, int], None] | None = None

    def _replay_journal(self) -> bool:
        try:
            lines = self.journal_path.read_bytes().splitlines()
        except FileNotFoundError:
            return False
        for line in lines:
            try:
                key, queue_id, offset = json.loads(line)
                self.table.setdefault(str(key), {})[int(queue_id)] = int(offset)
            except (ValueError, TypeError):
                continue  # a line torn by a crash mid-write
        return bool(lines)

    def commit(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        key = f"{group}@{topic}"
        if self.apply(key, queue_id, offset) and self.on_change is not None:
            self.on_change(key, queue_id, offset)

    def apply(self, key: str, queue_id: int, offset: int) -> bool:
        """Set one offset ("group@topic" key) without telling ``on_change``; False if it was already so."""
        queues = self.table.setdefault(key, {})
        if queues.get(queue_id) == offset:
            return False
        queues[queue_id] = offset
        self.dirty = True
        os.write(self._journal, json.dumps([key, queue_id, offset]).encode() + b"\n")
        return True

    def query(self, group: str, topic: str, queue_id: int) -> int:
        """The committed offset, or -1 when the group never committed one for this queue."""
        return self.table.get(f"{group}@{topic}", {}).get(queue_id, -1)

    def snapshot(self) -> dict[str, Any]:
        return {"offsetTable": {key: {str(q): o for q, o in queues.items()} for key, queues in self.table.items()}}

    def persist(self) -> None:
        """Write the snapshot, then empty the journal it now covers."""
        if self.dirty:
            self.dirty = False
            write_json_atomic(self.path, self.snapshot())
            os.ftruncate(self._journal, 0)

    def close(self) -> None:
        self.persist()
        os.close(self._journal)


class RateCounter:
    """A running total plus per-second buckets, for RocketMQ's "10 s, 1 min, 10 min" TPS strings."""

    _WINDOWS = (10, 60, 600)

    def __init__(self) -> None:
        self.total = 0
        self._buckets: deque[list[int]] = deque(maxlen=self._WINDOWS[-1] + 1)  # [second, count]

    def add(self, n: int) -> None:
        self.total += n
        second = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, n])

    def tps(self, window: int) -> float:
        now = int(time.monotonic())
        # The current second is still filling, so the window ends at the last complete second.
        count = sum(c for s, c in self._buckets if now - window <= s < now)
        return count / window

    def tps_string(self) -> str:
        return " ".join(f"{self.tps(w):.2f}" for w in self._WINDOWS)
