"""Broker metadata carried through the Raft log: topic configs and consumer offsets (see docs/replication.md).

A meta entry is a commit-log entry whose payload starts with META_PREFIX and carries one JSON object:
``{"topic": <TopicConfig JSON>}``, ``{"offsets": [[group@topic, queueId, offset], ...]}``, or a new
master's snapshot of both tables ``{"topics": [<TopicConfig JSON>, ...], "offsets": [...]}``. A stored
message record starts with its own total size (a positive i32), so the four zero bytes of the prefix can
never begin one. Every replica applies a meta entry when it commits, in log order, exactly like a message
reaching its consume queue; the leader that wrote the entry already holds its content (or something newer),
so it skips entries of its own term.

OffsetSync batches the master's consumer-offset changes into one meta entry per ``interval`` (pulls commit
offsets all the time; one entry per pull would cost more than the messages).
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from cluster.local.storemeta import TopicConfig

logger = logging.getLogger(__name__)

META_PREFIX = b"\x00\x00\x00\x00RMQH-META\x00"
Failure = tuple[int, str]


def is_meta(payload: bytes) -> bool:
    return payload[:4] == b"\x00\x00\x00\x00" and payload.startswith(META_PREFIX)


def topic_entry(config: TopicConfig) -> bytes:
    return META_PREFIX + json.dumps({"topic": config.to_json()}, separators=(",", ":")).encode()


def offsets_entry(offsets: dict[tuple[str, int], int]) -> bytes:
    rows = [[key, queue_id, offset] for (key, queue_id), offset in offsets.items()]
    return META_PREFIX + json.dumps({"offsets": rows}, separators=(",", ":")).encode()


def snapshot_entry(topics: list[TopicConfig], offsets: dict[tuple[str, int], int]) -> bytes:
    """Everything a new master knows: followers converge on it even where the log could not tell them
    (a topic whose entry a deposed leader lost to truncation, an offset stored on a slave)."""
    rows = [[key, queue_id, offset] for (key, queue_id), offset in offsets.items()]
    body = {"topics": [t.to_json() for t in topics], "offsets": rows}
    return META_PREFIX + json.dumps(body, separators=(",", ":")).encode()


def decode(payload: bytes) -> dict[str, Any]:
    """The JSON object of a meta entry; ValueError when it is not one."""
    if not is_meta(payload):
        raise ValueError("not a meta entry")
    data = json.loads(payload[len(META_PREFIX):])
    if not isinstance(data, dict):
        raise ValueError("meta entry is not a JSON object")
    return data


#: Appends one meta payload as leader: returns a future of the commit's outcome (None = committed).
MetaAppender = Callable[[bytes], "asyncio.Future[Failure | None]"]


class OffsetSync:
    """Coalesces the master's offset commits into meta entries; callers may wait for theirs to commit."""

    def __init__(self, append: MetaAppender, interval: float, is_master: Callable[[], bool]) -> None:
        self._append = append
        self._is_master = is_master
        self.interval = interval
        self._dirty: dict[tuple[str, int], int] = {}
        self._waiters: list[asyncio.Future[Failure | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offset-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._answer(self._waiters, (1, "broker stopping"))
        self._waiters = []

    def changed(self, key: str, queue_id: int, offset: int) -> None:
        """A consumer offset changed on the master: replicate it with the next batch."""
        self._dirty[(key, queue_id)] = offset
        self._wake.set()

    def drop(self) -> None:
        """Forget unsent changes (this replica is no longer the master; the new one has its own)."""
        self._dirty.clear()
        self._answer(self._waiters, (14, "not the master any more"))
        self._waiters = []

    def flushed(self) -> asyncio.Future[Failure | None]:
        """A future answered once every change made so far is committed (or cannot be)."""
        future: asyncio.Future[Failure | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._dirty = self._dirty, {}
            waiters, self._waiters = self._waiters, []
            outcome: Failure | None = None
            if batch:
                try:
                    outcome = await self._append(offsets_entry(batch))
                except Exception as exc:  # never let one failed batch end the loop
                    logger.warning("consumer offsets not replicated: %s", exc)
                    outcome = (1, str(exc))
                if outcome is not None and self._is_master():
                    # Ambiguous (quorum timeout) yet still the master: send these again, under newer values.
                    self._dirty = {**batch, **self._dirty}
                    self._wake.set()
            self._answer(waiters, outcome)
            await asyncio.sleep(self.interval)

    @staticmethod
    def _answer(waiters: list[asyncio.Future[Failure | None]], outcome: Failure | None) -> None:
        for future in waiters:
            if not future.done():
                future.set_result(outcome)
