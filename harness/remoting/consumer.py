"""A clustering-mode pull consumer: rebalance with AllocateMessageQueueAveragely, one long poll in flight per
assigned queue, offsets committed every few seconds and on close.

``poll()`` hands out the next batch any queue returned; meanwhile every other assigned queue keeps a long
poll open at the broker, so a message on any queue ends the wait at once (what the Java push consumer gets
from its pull service). Offsets of what poll() returned are committed afterwards (at-least-once).
"""
from __future__ import annotations

import functools
import logging
import queue as queue_mod
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, TypeVar

from harness.errors import ConfigError, RemotingError, ResponseError
from harness.remoting.commands import RETRY_GROUP_TOPIC_PREFIX, PullResult
from harness.remoting.message import MessageExt
from harness.remoting.mq import MQClient
from harness.remoting.route import MessageQueue

logger = logging.getLogger(__name__)

T = TypeVar("T")
ConsumeFrom = Literal["LAST", "FIRST"]
_CONSUME_FROM_WHERE = {"LAST": "CONSUME_FROM_LAST_OFFSET", "FIRST": "CONSUME_FROM_FIRST_OFFSET"}
_TransportOrResponse = (RemotingError, ResponseError)


def allocate_averagely(queues: Sequence[T], consumer_ids: Sequence[str], me: str) -> list[T]:
    """AllocateMessageQueueAveragely over already sorted queues and consumer ids: consecutive blocks, the
    first ``len(queues) % len(consumer_ids)`` consumers taking one extra queue."""
    if me not in consumer_ids or not queues:
        return []
    index, q, c = consumer_ids.index(me), len(queues), len(consumer_ids)
    mod = q % c
    if q <= c:
        size = 1
    else:
        size = q // c + 1 if mod > 0 and index < mod else q // c
    start = index * size if mod > 0 and index < mod else index * size + mod
    return [queues[(start + i) % q] for i in range(min(size, q - start))]


@dataclass(eq=False)
class _QueueState:
    next_offset: int
    consumed: int | None = None  # offset after the last batch poll() returned: what a commit stores
    committed: int | None = None
    inflight: Future[PullResult] | None = None
    retry_at: float = 0.0


class PullConsumer:
    """One consumer of ``group`` on ``topic``; one PullConsumer per group and client. Thread-safe enough
    for one user (calls are serialized); works under gevent."""

    def __init__(self, client: MQClient, group: str, topic: str, *, subscription: str = "*", pull_batch: int = 32,
                 suspend: float = 15.0, rebalance_interval: float = 20.0, commit_interval: float = 5.0,
                 consume_from: ConsumeFrom | str = "LAST", error_backoff: float = 1.0) -> None:
        self.client, self.group, self.topic, self.subscription = client, group, topic, subscription
        self.pull_batch, self.suspend = pull_batch, suspend
        self.rebalance_interval, self.commit_interval = rebalance_interval, commit_interval
        self.error_backoff = error_backoff
        where = consume_from.upper()
        if where not in _CONSUME_FROM_WHERE:
            raise ConfigError(f"consume_from must be LAST or FIRST, not {consume_from!r}")
        self.consume_from: ConsumeFrom = where  # type: ignore[assignment]
        self._assigned: dict[MessageQueue, _QueueState] = {}
        self._done: queue_mod.Queue[tuple[MessageQueue, _QueueState, Future[PullResult]] | None] = queue_mod.Queue()
        self._lock = threading.RLock()
        self._rebalance_at = 0.0
        self._commit_at = 0.0
        self._started = self._closed = False

    @property
    def assignment(self) -> list[MessageQueue]:
        return sorted(self._assigned)

    def __enter__(self) -> PullConsumer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Join the group (heartbeat) and rebalance on the first poll."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self.client.register_consumer(self.group, {self.topic: self.subscription},
                                          _CONSUME_FROM_WHERE[self.consume_from], send=False)
            self.client.add_rebalance_listener(self.group, self.request_rebalance)
            self._heartbeat()
            self._commit_at = time.monotonic() + self.commit_interval

    def request_rebalance(self) -> None:
        """Rebalance before the next batch (called on NOTIFY_CONSUMER_IDS_CHANGED)."""
        self._rebalance_at = 0.0
        self._done.put(None)  # wakes a poll() that is waiting

    def poll(self, timeout: float = 1.0) -> list[MessageExt]:
        """The next batch from any assigned queue, or [] when none arrived within ``timeout``."""
        with self._lock:
            self.start()
            deadline = time.monotonic() + timeout
            while not self._closed:
                self._maintain()
                now = time.monotonic()
                try:
                    item = self._done.get(timeout=max(0.0, min(deadline, self._next_event()) - now))
                except queue_mod.Empty:
                    item = None
                batch = self._take(item) if item is not None else []
                if batch or time.monotonic() >= deadline:
                    return batch
            return []

    def commit(self, sync: bool = False) -> None:
        """Store the consumed offset of every assigned queue that moved (oneway unless ``sync``)."""
        with self._lock:
            for mq, state in list(self._assigned.items()):
                self._commit_queue(mq, state, sync)
            self._commit_at = time.monotonic() + self.commit_interval

    def close(self) -> None:
        """Commit synchronously and leave the group, so the other members take over the queues now."""
        with self._lock:
            if self._closed:
                return
            if self._started:
                self.commit(sync=True)
                self.client.unregister_consumer(self.group)
            self._closed = True
            self._assigned.clear()

    # ------------------------------------------------------------ internals

    def _maintain(self) -> None:
        now = time.monotonic()
        if now >= self._rebalance_at:
            self._rebalance()
        if now >= self._commit_at:
            self.commit()
        self._issue_pulls()

    def _next_event(self) -> float:
        pending_retries = [s.retry_at for s in self._assigned.values() if s.inflight is None]
        return min([self._rebalance_at, self._commit_at, *pending_retries])

    def _heartbeat(self) -> None:
        try:
            self.client.heartbeat(self.group, [self.topic])
        except _TransportOrResponse as exc:
            logger.info("%s: heartbeat of group %s failed: %s", self.client.client_id, self.group, exc)

    def _rebalance(self) -> None:
        try:
            mine = self._allocation()
        except _TransportOrResponse as exc:
            logger.info("%s: rebalance of %s failed, keeping %d queues: %s", self.client.client_id, self.group,
                        len(self._assigned), exc)
            self._rebalance_at = time.monotonic() + self.error_backoff
            return
        self._rebalance_at = time.monotonic() + self.rebalance_interval
        for mq in [mq for mq in self._assigned if mq not in mine]:
            self._commit_queue(mq, self._assigned.pop(mq), sync=True)  # the next owner reads this offset
        for mq in mine:
            if mq not in self._assigned:
                start = self._start_offset(mq)
                if start is None:
                    self._rebalance_at = time.monotonic() + self.error_backoff
                else:
                    self._assigned[mq] = _QueueState(start)

    def _allocation(self) -> list[MessageQueue]:
        queues = self.client.topic_route(self.topic).subscribe_queues()
        ids = sorted(self.client.consumer_ids(self.group, self.topic))
        if self.client.client_id not in ids:  # the broker has not seen our heartbeat (yet, or any more)
            self._heartbeat()
            ids = sorted(self.client.consumer_ids(self.group, self.topic))
        return allocate_averagely(queues, ids, self.client.client_id)

    def _start_offset(self, mq: MessageQueue) -> int | None:
        """The group's stored offset; without one, the queue's end (LAST) or start (FIRST)."""
        try:
            stored = self.client.query_consumer_offset(self.group, mq)
            if stored is not None and stored >= 0:
                return stored
            if self.consume_from == "FIRST" or mq.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
                return self.client.min_offset(mq)
            return self.client.max_offset(mq)
        except _TransportOrResponse as exc:
            logger.info("%s: no start offset for %s yet: %s", self.client.client_id, mq, exc)
            return None

    def _issue_pulls(self) -> None:
        now = time.monotonic()
        for mq, state in self._assigned.items():
            if state.inflight is not None or now < state.retry_at:
                continue
            try:
                fut = self.client.pull_async(mq, state.next_offset, group=self.group, max_nums=self.pull_batch,
                                             subscription=self.subscription, suspend_timeout=self.suspend)
            except _TransportOrResponse as exc:
                logger.info("%s: pull of %s not sent: %s", self.client.client_id, mq, exc)
                state.retry_at = now + self.error_backoff
                continue
            state.inflight = fut
            fut.add_done_callback(functools.partial(self._pull_done, mq, state))

    def _pull_done(self, mq: MessageQueue, state: _QueueState, fut: Future[PullResult]) -> None:
        self._done.put((mq, state, fut))  # runs in the reader thread: hand over, process in poll()

    def _take(self, item: tuple[MessageQueue, _QueueState, Future[PullResult]]) -> list[MessageExt]:
        mq, state, fut = item
        if self._assigned.get(mq) is not state:
            return []  # the queue was reassigned while this pull was in flight; someone else owns it now
        state.inflight = None
        try:
            result = fut.result()
        except _TransportOrResponse as exc:
            logger.info("%s: pull of %s failed: %s", self.client.client_id, mq, exc)
            state.retry_at = time.monotonic() + self.error_backoff
            return []
        state.next_offset = result.next_begin_offset
        if result.status == "OFFSET_ILLEGAL":
            logger.warning("%s: offset of %s illegal, moving to %d", self.client.client_id, mq,
                           result.next_begin_offset)
            state.consumed = result.next_begin_offset
        elif result.status in ("FOUND", "NO_MATCHED_MSG"):
            state.consumed = result.next_begin_offset
        return result.messages

    def _commit_queue(self, mq: MessageQueue, state: _QueueState, sync: bool) -> None:
        if state.consumed is None or state.consumed == state.committed:
            return
        try:
            self.client.update_consumer_offset(self.group, mq, state.consumed, oneway=not sync)
            state.committed = state.consumed
        except _TransportOrResponse as exc:
            logger.info("%s: commit of %s at %d failed: %s", self.client.client_id, mq, state.consumed, exc)
