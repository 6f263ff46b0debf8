"""PULL_MESSAGE with tag filtering, offset commit and long polling.

A pull that finds nothing and carries the suspend flag is held (the handler returns None) until a message
matching its filter arrives in its queue, or until min(suspendTimeoutMillis, pull_suspend_max) passes.
Then the pull runs again without the right to suspend, and its result goes out with the original opaque
(PULL_NOT_FOUND on expiry), as RocketMQ's PullRequestHoldService does.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cluster.local.broker_clients import parse_tag_expression
from cluster.local.broker_common import RequestRejected, field_int, field_str, guarded, response
from cluster.local.store import GetStatus
from harness.remoting.codes import (
    PULL_FLAG_COMMIT_OFFSET, PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND, RequestCode, ResponseCode,
)
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.server import Connection, RemotingServer

logger = logging.getLogger(__name__)

#: maxTransferCountOnMessageInMemory / maxTransferBytesOnMessageInMemory: the most one pull returns.
MAX_TRANSFER_COUNT = 32
MAX_TRANSFER_BYTES = 256 * 1024

_STATUS_CODES = {
    GetStatus.FOUND: ResponseCode.SUCCESS,
    GetStatus.NO_MATCHED_MESSAGE: ResponseCode.PULL_RETRY_IMMEDIATELY,
    GetStatus.OFFSET_OVERFLOW_ONE: ResponseCode.PULL_NOT_FOUND,
    GetStatus.OFFSET_OVERFLOW_BADLY: ResponseCode.PULL_OFFSET_MOVED,
    GetStatus.OFFSET_TOO_SMALL: ResponseCode.PULL_OFFSET_MOVED,
}


@dataclass(slots=True)
class PullRequest:
    group: str
    topic: str
    queue_id: int
    offset: int
    max_nums: int
    sys_flag: int
    commit_offset: int
    suspend_millis: int
    codes: frozenset[int] | None = None


def parse_pull_header(ext: dict[str, str]) -> PullRequest:
    return PullRequest(
        group=field_str(ext, "consumerGroup"), topic=field_str(ext, "topic"),
        queue_id=field_int(ext, "queueId"), offset=field_int(ext, "queueOffset"),
        max_nums=field_int(ext, "maxMsgNums"), sys_flag=field_int(ext, "sysFlag"),
        commit_offset=field_int(ext, "commitOffset"), suspend_millis=field_int(ext, "suspendTimeoutMillis"))


@dataclass(eq=False)
class _Held:
    request: RemotingCommand
    conn: Connection
    pull: PullRequest
    timer: asyncio.TimerHandle | None = field(default=None)


class PullProcessor:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.store
        self.suspend_max = broker.config.timing.pull_suspend_max
        self._held: dict[tuple[str, int], list[_Held]] = {}
        self.store.on_arrival = self._on_arrival

    def register(self, server: RemotingServer) -> None:
        server.register(RequestCode.PULL_MESSAGE, guarded(self.pull))

    @property
    def held_count(self) -> int:
        return sum(len(v) for v in self._held.values())

    # ------------------------------------------------------------------ pull
    def pull(self, request: RemotingCommand, conn: Connection) -> RemotingCommand | None:
        pull = parse_pull_header(request.ext_fields)
        pull.codes = self._filter_of(request, pull)
        return self._execute(request, conn, pull, allow_suspend=True)

    def _filter_of(self, request: RemotingCommand, pull: PullRequest) -> frozenset[int] | None:
        config = self.broker.topics.get(pull.topic)
        if config is None:
            raise RequestRejected(ResponseCode.TOPIC_NOT_EXIST,
                                  f"topic[{pull.topic}] not exist, apply first please!")
        if not config.readable:
            raise RequestRejected(ResponseCode.NO_PERMISSION, f"the topic[{pull.topic}] pulling message is forbidden")
        if pull.queue_id < 0 or pull.queue_id >= config.read_queue_nums:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR,
                                  f"queueId[{pull.queue_id}] is illegal, topic:[{pull.topic}] "
                                  f"topicConfig.readQueueNums:[{config.read_queue_nums}] consumer:[{pull.group}]")
        ext = request.ext_fields
        if pull.sys_flag & PULL_FLAG_SUBSCRIPTION:
            if (ext.get("expressionType") or "TAG") != "TAG":
                raise RequestRejected(ResponseCode.SYSTEM_ERROR, "The broker does not support consumer to "
                                      "filter message by " + ext["expressionType"])
            return parse_tag_expression(ext.get("subscription"))
        if not self.broker.clients.has_group(pull.group):
            raise RequestRejected(ResponseCode.SUBSCRIPTION_NOT_EXIST, "the consumer's group info not exist")
        sub = self.broker.clients.subscription(pull.group, pull.topic)
        if sub is None:
            raise RequestRejected(ResponseCode.SUBSCRIPTION_NOT_EXIST, "the consumer's subscription not exist")
        if sub.sub_version < field_int(ext, "subVersion", default=0):
            raise RequestRejected(ResponseCode.SUBSCRIPTION_NOT_LATEST, "the consumer's subscription not latest")
        return sub.codes

    def _execute(self, request: RemotingCommand, conn: Connection, pull: PullRequest,
                 allow_suspend: bool) -> RemotingCommand | None:
        result = self.store.get_messages(pull.topic, pull.queue_id, pull.offset,
                                         min(pull.max_nums, MAX_TRANSFER_COUNT), MAX_TRANSFER_BYTES, pull.codes)
        code = _STATUS_CODES.get(result.status)
        if code is None:  # NO_MESSAGE_IN_QUEUE / NO_MATCHED_LOGIC_QUEUE
            code = ResponseCode.PULL_OFFSET_MOVED if pull.offset != 0 else ResponseCode.PULL_NOT_FOUND
        if allow_suspend and pull.sys_flag & PULL_FLAG_COMMIT_OFFSET and self.broker.is_master:
            self.store.offsets.commit(pull.group, pull.topic, pull.queue_id, pull.commit_offset)
        if code == ResponseCode.PULL_NOT_FOUND and allow_suspend and pull.sys_flag & PULL_FLAG_SUSPEND:
            self._hold(request, conn, pull)
            return None
        next_offset = result.next_begin_offset
        if code == ResponseCode.PULL_OFFSET_MOVED and self.broker.raft is not None and not self.broker.is_master:
            # A slave may simply not have the newest commits yet (offsetCheckInSlave=false): retry, keep
            # the offset, and go back to the master, instead of moving the consumer's offset.
            code, next_offset = ResponseCode.PULL_RETRY_IMMEDIATELY, pull.offset
            suggest = 0
        else:
            suggest = self.broker.suggest_broker_id(pull.topic, pull.queue_id, next_offset, result.max_offset)
        if code == ResponseCode.PULL_OFFSET_MOVED:
            logger.info("pull offset moved: group %s topic %s queue %s offset %s -> %s (%s)", pull.group,
                        pull.topic, pull.queue_id, pull.offset, result.next_begin_offset, result.status.value)
        return response(request, code, result.status.value, {
            "suggestWhichBrokerId": str(suggest), "nextBeginOffset": str(next_offset),
            "minOffset": str(result.min_offset), "maxOffset": str(result.max_offset)}, result.body)

    # ------------------------------------------------------------------ long polling
    def _hold(self, request: RemotingCommand, conn: Connection, pull: PullRequest) -> None:
        held = _Held(request, conn, pull)
        timeout = max(0.0, min(pull.suspend_millis / 1000.0, self.suspend_max))
        held.timer = asyncio.get_running_loop().call_later(timeout, self._wake, held)
        self._held.setdefault((pull.topic, pull.queue_id), []).append(held)

    def _on_arrival(self, topic: str, queue_id: int, max_offset: int, tags_code: int) -> None:
        if not self._held:
            return
        waiting = self._held.get((topic, queue_id))
        if not waiting:
            return
        loop = asyncio.get_running_loop()
        for held in list(waiting):
            codes = held.pull.codes
            if max_offset > held.pull.offset and (codes is None or tags_code in codes):
                if held.timer is not None:
                    held.timer.cancel()
                loop.call_soon(self._wake, held)  # not from inside the store's dispatch loop
                waiting.remove(held)
        if not waiting:
            del self._held[(topic, queue_id)]

    def _wake(self, held: _Held) -> None:
        key = (held.pull.topic, held.pull.queue_id)
        waiting = self._held.get(key)
        if waiting and held in waiting:
            waiting.remove(held)
            if not waiting:
                del self._held[key]
        if held.conn.closed:
            return
        try:
            answer = self._execute(held.request, held.conn, held.pull, allow_suspend=False)
        except Exception as exc:  # the pull was valid when held; report what changed instead of hanging
            logger.exception("held pull for %s-%s failed on wake-up", *key)
            answer = response(held.request, ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
        if answer is not None and not held.request.is_oneway:
            held.conn.send(answer)

    def drop_all(self) -> None:
        for waiting in self._held.values():
            for held in waiting:
                if held.timer is not None:
                    held.timer.cancel()
        self._held.clear()
