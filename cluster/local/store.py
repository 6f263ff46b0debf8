"""The message store: stored-message records in the commit log, consume queues, offsets and topics.

Each commit-log entry's payload is one record in the E.1 layout whose PHYSICALOFFSET is the entry's own
payload position. Queue offsets are assigned when a message is appended (``put_messages``); consume queues
only ever hold *committed* entries, added by ``dispatch_committed``. A single replica commits right after
each append (``auto_commit``); a Raft layer turns that off, sets ``term``, calls ``dispatch_committed``
when its commit index advances, and ``rebuild_offsets`` after it truncates the log. Entries that are not
message records are either a leader's no-op (empty) or broker metadata (``broker_meta``), handed to
``on_meta`` when they commit.

Layout under the store directory: ``commitlog/`` (segments), ``consumequeue/<topic>/<queueId>``,
``config/topics.json`` and ``config/consumerOffset.json``.
"""
from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cluster.local.broker_meta import is_meta
from cluster.local.commitlog import HEADER_SIZE, CommitLog, Entry
from cluster.local.consumequeue import ConsumeQueue
from cluster.local.records import (
    STORE_TS_PROBE, DispatchInfo, NewMessage, encode_record, pack_host, parse_dispatch, store_timestamp_of,
    topic_field,
)
from cluster.local.storemeta import ConsumerOffsets, RateCounter, TopicTable, write_json_atomic
from harness.remoting.message import HostAddress

logger = logging.getLogger(__name__)

Appender = Callable[[list[bytes]], list[Entry]]
ArrivalListener = Callable[[str, int, int, int], None]
"""Called as (topic, queue_id, new max offset, tags code) when a message becomes visible to consumers."""


class GetStatus(str, Enum):
    FOUND = "FOUND"
    NO_MATCHED_MESSAGE = "NO_MATCHED_MESSAGE"
    NO_MESSAGE_IN_QUEUE = "NO_MESSAGE_IN_QUEUE"
    NO_MATCHED_LOGIC_QUEUE = "NO_MATCHED_LOGIC_QUEUE"
    OFFSET_TOO_SMALL = "OFFSET_TOO_SMALL"
    OFFSET_OVERFLOW_ONE = "OFFSET_OVERFLOW_ONE"
    OFFSET_OVERFLOW_BADLY = "OFFSET_OVERFLOW_BADLY"


@dataclass(frozen=True, slots=True)
class GetResult:
    status: GetStatus
    body: bytes
    count: int
    next_begin_offset: int
    min_offset: int
    max_offset: int


@dataclass(frozen=True, slots=True)
class PutResult:
    queue_id: int
    #: Queue offset of the first message; the others follow consecutively.
    queue_offset: int
    #: Commit-log (payload) position of each message: its PHYSICALOFFSET.
    positions: list[int]
    #: Log index of the last entry written (what a Raft layer waits to see committed).
    last_index: int
    store_timestamp: int


class MessageStore:
    def __init__(self, directory: Path, store_host: str, segment_size: int = 64 * 1024 * 1024,
                 auto_commit: bool = True) -> None:
        self.directory = Path(directory)
        self.commitlog = CommitLog(self.directory / "commitlog", segment_size)
        self.topics = TopicTable(self.directory / "config" / "topics.json")
        self.offsets = ConsumerOffsets(self.directory / "config" / "consumerOffset.json")
        host = HostAddress.parse(store_host)
        self.store_host = pack_host(host.ip, host.port)
        self.auto_commit = auto_commit
        #: Term written into appended entries; a Raft layer sets it when it becomes leader.
        self.term = 0
        self.on_arrival: ArrivalListener | None = None
        #: Called with each committed metadata entry, in log order (the replication layer applies it).
        self.on_meta: Callable[[Entry], None] | None = None
        self.put_stats = RateCounter()
        self.get_stats = RateCounter()  # messages handed out
        self.get_found = RateCounter()  # get calls that found something ...
        self.get_miss = RateCounter()  # ... and those that did not
        self.boot_timestamp = int(time.time() * 1000)
        self._queues: dict[tuple[str, int], ConsumeQueue] = {}
        self._next_offsets: dict[tuple[str, int], int] = {}
        self._pending: dict[int, DispatchInfo] = {}  # appended, not yet dispatched: index -> info
        self._topic_fields: dict[str, tuple[bytes, int]] = {}
        self._io_lock = threading.Lock()  # close() waits for a flush running in a worker thread
        self._closed = False
        self._checkpointed = -1
        self._checkpoint = self.directory / "config" / "dispatch.checkpoint"
        self._load_queues()
        self.dispatched_index = self._recover_dispatched_index()
        self.rebuild_offsets()
        if auto_commit:
            self.dispatch_committed(self.commitlog.last_index)

    # ------------------------------------------------------------------ append
    def put_messages(self, topic: str, queue_id: int, messages: Sequence[NewMessage], born_host: bytes,
                     append: Appender | None = None) -> PutResult:
        """Append messages to one queue at consecutive queue offsets (a batch is one call).

        ``append`` replaces ``commitlog.append(payloads, self.term)``: a Raft leader appends through its
        node (which writes the same commit log). If it raises, nothing was stored and no offset is used."""
        key = (topic, queue_id)
        first = queue_offset = self._next_offsets.get(key, 0)
        topic_part, magic = self._topic_field(topic)
        now = int(time.time() * 1000)
        position = self.commitlog.position_of_next_payload()
        payloads, infos, positions = [], [], []
        for msg in messages:
            record = encode_record(msg, topic_part, magic, queue_id, queue_offset, position, born_host, now,
                                   self.store_host)
            payloads.append(record)
            positions.append(position)
            infos.append(DispatchInfo(topic, queue_id, queue_offset, position, len(record), msg.tags_code))
            position += len(record) + HEADER_SIZE
            queue_offset += 1
        entries = append(payloads) if append is not None else self.commitlog.append(payloads, self.term)
        self._next_offsets[key] = queue_offset
        self.put_stats.add(len(entries))
        last = entries[-1].index
        if self.auto_commit and self.dispatched_index == entries[0].index - 1:
            for info in infos:  # the single-replica fast path: committed as soon as written
                self._dispatch(info)
            self.dispatched_index = last
        else:
            pending = self._pending
            for entry, info in zip(entries, infos):
                pending[entry.index] = info
            if self.auto_commit:
                self.dispatch_committed(last)
        return PutResult(queue_id, first, positions, last, now)

    def _topic_field(self, topic: str) -> tuple[bytes, int]:
        field = self._topic_fields.get(topic)
        if field is None:
            field = self._topic_fields[topic] = topic_field(topic)
        return field

    # ------------------------------------------------------------------ dispatch
    def dispatch_committed(self, up_to_index: int) -> None:
        """Make every entry up to ``up_to_index`` (and not beyond the log) visible in its consume queue."""
        up_to = min(up_to_index, self.commitlog.last_index)
        pending = self._pending
        for index in range(self.dispatched_index + 1, up_to + 1):
            info = pending.pop(index, None) or self._parse_entry(index, apply_meta=True)
            if info is not None:
                self._dispatch(info)
            self.dispatched_index = index

    def _parse_entry(self, index: int, apply_meta: bool = False) -> DispatchInfo | None:
        entry = self.commitlog.entry(index)
        if not entry.payload:
            return None  # a Raft leader's no-op entry
        if is_meta(entry.payload):
            if apply_meta and self.on_meta is not None:
                self.on_meta(entry)
            return None
        try:
            return parse_dispatch(entry.payload, entry.position)
        except (ValueError, IndexError, struct.error) as exc:
            logger.error("commit log entry %s is not a message record, skipped: %s", index, exc)
            return None

    def _dispatch(self, info: DispatchInfo) -> None:
        cq = self._queue(info.topic, info.queue_id)
        if info.queue_offset < cq.count:
            return  # dispatched before a restart: dispatching is idempotent
        if info.queue_offset > cq.count:
            logger.error("consume queue %s-%s: offset %s leaves a gap after %s",
                         info.topic, info.queue_id, info.queue_offset, cq.count)
        cq.append(info.position, info.size, info.tags_code)
        if self.on_arrival is not None:
            self.on_arrival(info.topic, info.queue_id, cq.count, info.tags_code)

    def _queue(self, topic: str, queue_id: int) -> ConsumeQueue:
        cq = self._queues.get((topic, queue_id))
        if cq is None:
            cq = self._queues[(topic, queue_id)] = ConsumeQueue(
                self.directory / "consumequeue" / topic / str(queue_id))
        return cq

    def rebuild_offsets(self) -> None:
        """Recompute the next queue offset of every queue: committed ones from the consume queues, the
        rest from the undispatched log tail. A Raft layer calls this after truncating the log."""
        last = self.commitlog.last_index
        self._pending = {i: info for i, info in self._pending.items() if i <= last}
        offsets = {key: cq.count for key, cq in self._queues.items()}
        for index in range(self.dispatched_index + 1, last + 1):
            info = self._pending.get(index) or self._parse_entry(index)
            if info is None:
                continue
            self._pending[index] = info
            key = (info.topic, info.queue_id)
            offsets[key] = max(offsets.get(key, 0), info.queue_offset + 1)
        self._next_offsets = offsets

    # ------------------------------------------------------------------ open / repair
    def _load_queues(self) -> None:
        root = self.directory / "consumequeue"
        if not root.is_dir():
            return
        for topic_dir in root.iterdir():
            for queue_file in topic_dir.iterdir():
                if queue_file.name.isdigit():
                    self._queues[(topic_dir.name, int(queue_file.name))] = ConsumeQueue(queue_file)

    def _recover_dispatched_index(self) -> int:
        """Where dispatching resumes. The consume queues say how far it got before a kill (their maps were in
        the page cache); the checkpoint, written only after they were fsynced, bounds that after a power
        loss, which can drop some queue's tail. Re-dispatching is idempotent, so the lower one is safe."""
        derived = self._repair_queues()
        try:
            checkpoint = int(json.loads(self._checkpoint.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return derived
        return max(0, min(derived, checkpoint, self.commitlog.last_index))

    def _repair_queues(self) -> int:
        """Drop consume-queue units that point at nothing valid (a log cut short by a crash) and return the
        last dispatched log index: dispatching is in index order, so it is the highest one referenced."""
        dispatched = 0
        for (topic, queue_id), cq in self._queues.items():
            while cq.count and not self._unit_valid(cq, cq.count - 1):
                cq.truncate(cq.count - 1)
            if cq.count:
                dispatched = max(dispatched, self.commitlog.index_at_position(cq.unit(cq.count - 1)[0]) or 0)
        return dispatched

    def _unit_valid(self, cq: ConsumeQueue, offset: int) -> bool:
        position, size, _ = cq.unit(offset)
        if self.commitlog.index_at_position(position) is None or position + size > self.commitlog.end_position:
            return False
        try:
            info = parse_dispatch(self.commitlog.read(position, size), position)
        except (ValueError, struct.error):
            return False
        return info.queue_offset == offset

    # ------------------------------------------------------------------ read
    def get_messages(self, topic: str, queue_id: int, offset: int, max_nums: int, max_bytes: int,
                     tags_codes: frozenset[int] | None = None) -> GetResult:
        """Messages from ``offset`` on; ``tags_codes`` None means every tag ("*")."""
        cq = self._queues.get((topic, queue_id))
        if cq is None or offset < 0 or offset >= cq.count:
            self.get_miss.add(1)
        if cq is None:
            return GetResult(GetStatus.NO_MATCHED_LOGIC_QUEUE, b"", 0, 0, 0, 0)
        max_offset = cq.count
        if max_offset == 0:
            return GetResult(GetStatus.NO_MESSAGE_IN_QUEUE, b"", 0, 0, 0, 0)
        if offset < 0:
            return GetResult(GetStatus.OFFSET_TOO_SMALL, b"", 0, 0, 0, max_offset)
        if offset == max_offset:
            return GetResult(GetStatus.OFFSET_OVERFLOW_ONE, b"", 0, offset, 0, max_offset)
        if offset > max_offset:
            return GetResult(GetStatus.OFFSET_OVERFLOW_BADLY, b"", 0, 0, 0, max_offset)
        return self._read_queue(cq, offset, max_nums, max_bytes, tags_codes)

    def _read_queue(self, cq: ConsumeQueue, offset: int, max_nums: int, max_bytes: int,
                    tags_codes: frozenset[int] | None) -> GetResult:
        # Like RocketMQ, scan at most 16000 bytes of consume queue (800 units) per call when filtering.
        end = min(cq.count, offset + max(800, max_nums))
        parts: list[bytes] = []
        total = 0
        next_offset = offset
        read, unit = self.commitlog.read, cq.unit
        while next_offset < end:
            position, size, code = unit(next_offset)
            if tags_codes is not None and code not in tags_codes:
                next_offset += 1
                continue
            if parts and total + size > max_bytes:
                break
            parts.append(read(position, size))
            total += size
            next_offset += 1
            if len(parts) >= max_nums:
                break
        status = GetStatus.FOUND if parts else GetStatus.NO_MATCHED_MESSAGE
        self.get_stats.add(len(parts))
        (self.get_found if parts else self.get_miss).add(1)
        return GetResult(status, b"".join(parts), len(parts), next_offset, 0, cq.count)

    def max_offset(self, topic: str, queue_id: int) -> int:
        cq = self._queues.get((topic, queue_id))
        return cq.count if cq else 0

    def min_offset(self, topic: str, queue_id: int) -> int:
        return 0  # nothing is ever deleted (no retention), so every queue starts at 0

    def store_time_at(self, topic: str, queue_id: int, offset: int) -> int:
        """STORETIMESTAMP of the message at ``offset``, or -1 if there is none."""
        cq = self._queues.get((topic, queue_id))
        if cq is None or not 0 <= offset < cq.count:
            return -1
        return store_timestamp_of(self.commitlog.read(cq.unit(offset)[0], STORE_TS_PROBE))

    def search_offset(self, topic: str, queue_id: int, timestamp: int) -> int:
        """The first offset whose store time is >= ``timestamp`` (binary search), else the max offset."""
        lo, hi = self.min_offset(topic, queue_id), self.max_offset(topic, queue_id)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.store_time_at(topic, queue_id, mid) < timestamp:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read_message(self, position: int) -> bytes | None:
        """The committed record whose PHYSICALOFFSET is ``position``, or None."""
        index = self.commitlog.index_at_position(position)
        if index is None or index > self.dispatched_index:
            return None
        payload = self.commitlog.entry(index).payload
        return None if not payload or is_meta(payload) else payload

    def lag_bytes(self, topic: str, queue_id: int, offset: int) -> int:
        """Commit-log bytes from the message at ``offset`` to the end of the log: how far a pull is behind."""
        cq = self._queues.get((topic, queue_id))
        if cq is None or not 0 <= offset < cq.count:
            return 0
        return self.commitlog.end_position - cq.unit(offset)[0]

    def queue_keys(self) -> list[tuple[str, int]]:
        return list(self._queues)

    # ------------------------------------------------------------------ durability
    def flush(self) -> None:
        """fsync the commit log and consume queues; meant to run in a worker thread on a timer."""
        with self._io_lock:
            if self._closed:
                return
            dispatched = self.dispatched_index  # every unit up to here is already in the queues' maps
            self.commitlog.flush()
            for cq in list(self._queues.values()):
                cq.flush()
            self._write_checkpoint(dispatched)

    def _write_checkpoint(self, dispatched: int) -> None:
        if dispatched != self._checkpointed:
            write_json_atomic(self._checkpoint, dispatched)
            self._checkpointed = dispatched

    def close(self) -> None:
        with self._io_lock:
            if self._closed:
                return
            self._closed = True
            self.offsets.close()
            self.topics.persist()
            self.commitlog.close()
            for cq in self._queues.values():
                cq.close()
            self._write_checkpoint(self.dispatched_index)
            self._queues.clear()
