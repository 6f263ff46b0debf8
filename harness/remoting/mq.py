"""The RocketMQ client API: routes, sends, pulls and offsets, on top of the remoting transport.

It follows what the Java client (4.9.x/5.x) does on the wire, so it talks to real Apache NameServers and
brokers as well as to the embedded ones: one NameServer at a time with fail-over, routes cached and polled,
sends with SEND_MESSAGE_V2 round robin over masters with retries on another broker group, pulls that carry
their subscription and follow suggestWhichBrokerId. Admin calls and the background loop live in
``mq_admin.py``; this module keeps the data path.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from harness.errors import ConfigError, RemotingConnectError, RemotingError, RemotingTimeoutError, ResponseError
from harness.remoting.client import split_addr
from harness.remoting.codes import (AUTO_CREATE_TOPIC_KEY, MASTER_ID, RETRYABLE_SEND_CODES, RequestCode,
                                    ResponseCode)
from harness.remoting.commands import (Message, PullResult, SendResult, UniqIds, batch_request, check,
                                       message_properties, parse_pull_response, parse_send_response,
                                       pull_request, request, send_request, uniq_key_of)
from harness.remoting.frame import RemotingCommand
from harness.remoting.message import MessageExt
from harness.remoting.mq_admin import AdminMixin
from harness.remoting.pool import ConnectionPool
from harness.remoting.route import MessageQueue, NoRouteError, QueueSelector, TopicRoute, parse_topic_route

logger = logging.getLogger(__name__)

__all__ = ["MQClient", "Message", "MessageExt", "MessageQueue", "PullResult", "SendResult", "TopicRoute"]

_SEND_REFRESH_CODES = frozenset({ResponseCode.SERVICE_NOT_AVAILABLE, ResponseCode.TOPIC_NOT_EXIST,
                                 ResponseCode.NO_PERMISSION})


class MQClient(AdminMixin):
    """One client instance (MQClientInstance): a connection pool, a route cache and a background loop."""

    def __init__(self, namesrv_addrs: list[str], *, client_id: str | None = None, rpc_timeout: float = 3.0,
                 route_poll_interval: float = 30.0, heartbeat_interval: float = 30.0,
                 producer_group: str = "rmqh-producer") -> None:
        if not namesrv_addrs:
            raise ConfigError("MQClient needs at least one NameServer address")
        self.namesrv_addrs = list(namesrv_addrs)
        self.rpc_timeout = rpc_timeout
        self.route_poll_interval = route_poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.producer_group = producer_group
        ip = local_ip(self.namesrv_addrs[0])
        # The Java client renames instance "DEFAULT" to pid#nanoTime: several clients per process stay apart.
        self.client_id = client_id or f"{ip}@{os.getpid()}#{time.monotonic_ns()}"
        self._ids = UniqIds(ip)
        self._pool = ConnectionPool(connect_timeout=rpc_timeout, on_request=self._on_server_request)
        self._ns_index = random.randrange(len(self.namesrv_addrs))
        self._routes: dict[str, TopicRoute] = {}
        self._selectors: dict[str, QueueSelector] = {}
        self._suggested: dict[MessageQueue, int] = {}  # pull: the broker id each queue was told to use
        self._sub_version = int(time.time() * 1000)
        self._init_admin()

    def __enter__(self) -> MQClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ NameServers and routes

    def namesrv_invoke(self, cmd: RemotingCommand) -> tuple[RemotingCommand, str]:
        """Ask the current NameServer; on a transport failure the next one (random start, then sticky)."""
        errors: list[RemotingError] = []
        n = len(self.namesrv_addrs)
        start = self._ns_index
        for i in range(n):
            index = (start + i) % n
            addr = self.namesrv_addrs[index]
            try:
                resp = self._pool.invoke(addr, cmd, self.rpc_timeout)
            except RemotingError as exc:
                errors.append(exc)
                continue
            self._ns_index = index
            return resp, addr
        raise RemotingError(f"no NameServer answered request code {cmd.code}: "
                            + "; ".join(str(e) for e in errors)) from errors[-1]

    def topic_route(self, topic: str, refresh: bool = False) -> TopicRoute:
        """The cached route, or a fresh one; when every NameServer fails, the cached one still serves."""
        cached = self._routes.get(topic)
        if cached is not None and not refresh:
            return cached
        try:
            route = self._fetch_route(topic)
        except (RemotingError, ResponseError) as exc:
            if cached is None:
                raise
            logger.info("route of %s not refreshed, keeping the cached one: %s", topic, exc)
            return cached
        self._set_route(topic, route)
        return route

    def _fetch_route(self, topic: str) -> TopicRoute:
        # version 409 plus acceptStandardJsonOnly asks for quoted keys; parse_topic_route copes with bare ones.
        cmd = request(RequestCode.GET_ROUTEINFO_BY_TOPIC, topic=topic, acceptStandardJsonOnly=True)
        resp, addr = self.namesrv_invoke(cmd)
        return parse_topic_route(topic, check(resp, addr).body)

    def _set_route(self, topic: str, route: TopicRoute) -> None:
        old = self._selectors.get(topic)
        self._routes[topic] = route
        if old is None or old.route != route:  # keep the round-robin position while nothing changed
            self._selectors[topic] = QueueSelector(route)

    def _selector(self, topic: str) -> QueueSelector:
        selector = self._selectors.get(topic)
        if selector is not None:
            return selector
        self.start()  # routes in use are refreshed by the background loop
        try:
            self.topic_route(topic)
        except ResponseError as exc:
            if exc.code != ResponseCode.TOPIC_NOT_EXIST:
                raise
            # Not created yet: send as if to TBW102's brokers; they auto-create the topic on first write.
            fallback = self.topic_route(AUTO_CREATE_TOPIC_KEY).for_new_topic(topic)
            self._set_route(topic, fallback)
        return self._selectors[topic]

    # ------------------------------------------------------------ sending

    def send(self, msg: Message, *, queue: MessageQueue | None = None, timeout: float | None = None,
             retries: int = 2) -> SendResult:
        """Send synchronously; an explicit ``queue`` gets one attempt, otherwise up to ``retries`` more on
        other broker groups. Raises ResponseError, RemotingConnectError (certainly not stored) or
        RemotingTimeoutError (outcome unknown: some attempt may have been stored)."""
        uniq = uniq_key_of(msg, self._ids)
        props = message_properties(msg, uniq)
        return self._send_retrying(msg.topic, queue, retries, timeout or self.rpc_timeout, uniq,
                                   lambda q: send_request(self.producer_group, msg, q, props))

    def send_batch(self, msgs: list[Message], *, queue: MessageQueue | None = None, timeout: float | None = None,
                   retries: int = 2) -> SendResult:
        """SEND_BATCH_MESSAGE: all messages share one topic and are stored at consecutive offsets."""
        if not msgs or len({m.topic for m in msgs}) != 1:
            raise ConfigError("send_batch needs at least one message, all of one topic")
        keys = [uniq_key_of(m, self._ids) for m in msgs]
        return self._send_retrying(msgs[0].topic, queue, retries, timeout or self.rpc_timeout, ",".join(keys),
                                   lambda q: batch_request(self.producer_group, msgs, q, keys))

    def _send_retrying(self, topic: str, queue: MessageQueue | None, retries: int, timeout: float, msg_id: str,
                       build: Callable[[MessageQueue], RemotingCommand]) -> SendResult:
        attempts = 1 if queue is not None else retries + 1
        last: Exception | None = None
        ambiguous: RemotingError | None = None
        avoid: str | None = None
        for _ in range(attempts):
            selector = self._selector(topic)
            target: MessageQueue | None = None
            try:
                target = queue or selector.select(avoid)
                addr = selector.route.master_addr(target.broker_name)
                return parse_send_response(self._pool.invoke(addr, build(target), timeout), target, msg_id, addr)
            except ResponseError as exc:
                if exc.code not in RETRYABLE_SEND_CODES:
                    raise
                if exc.code in _SEND_REFRESH_CODES:
                    self.request_route_refresh(topic)
                last = exc
            except RemotingError as exc:  # NoRouteError too: a group without a master needs a fresh route
                self.request_route_refresh(topic)
                last = exc
                if not isinstance(exc, RemotingConnectError):
                    ambiguous = ambiguous or exc  # it may have been stored: a later failure cannot undo that
            avoid = target.broker_name if target is not None else avoid
        assert last is not None
        raise _send_failure(topic, attempts, last, ambiguous)

    def send_async(self, msg: Message, *, queue: MessageQueue | None = None,
                   timeout: float | None = None) -> Future[SendResult]:
        """Pipelined send without retries; failures (also at submit time) arrive through the future."""
        uniq = uniq_key_of(msg, self._ids)
        try:
            selector = self._selector(msg.topic)
            target = queue or selector.select()
            addr = selector.route.master_addr(target.broker_name)
            cmd = send_request(self.producer_group, msg, target, message_properties(msg, uniq))
            return self._pool.invoke_async(addr, cmd, timeout or self.rpc_timeout,
                                           self._send_converter(target, uniq, addr))
        except (RemotingError, ResponseError) as exc:
            if isinstance(exc, RemotingError):
                self.request_route_refresh(msg.topic)
            failed: Future[SendResult] = Future()
            failed.set_exception(exc)
            return failed

    def _send_converter(self, queue: MessageQueue, msg_id: str, addr: str) -> Callable[[RemotingCommand], SendResult]:
        def convert(resp: RemotingCommand) -> SendResult:
            try:
                return parse_send_response(resp, queue, msg_id, addr)
            except ResponseError as exc:
                if exc.code in _SEND_REFRESH_CODES:  # e.g. a DLedger replica that lost the lead
                    self.request_route_refresh(queue.topic)
                raise
        return convert

    # ------------------------------------------------------------ pulling

    def pull(self, queue: MessageQueue, offset: int, *, group: str, max_nums: int = 32, subscription: str = "*",
             suspend_timeout: float = 0.0, commit_offset: int | None = None, broker_id: int | None = None,
             timeout: float | None = None) -> PullResult:
        """One PULL_MESSAGE; the broker may hold it up to ``suspend_timeout`` (long polling)."""
        addr, cmd, call_timeout, convert = self._prepare_pull(queue, offset, group, max_nums, subscription,
                                                              suspend_timeout, commit_offset, broker_id, timeout)
        try:
            resp = self._pool.invoke(addr, cmd, call_timeout)
        except RemotingError:
            self._pull_failed(queue)
            raise
        return convert(resp)  # type: ignore[no-any-return]

    def pull_async(self, queue: MessageQueue, offset: int, *, group: str, max_nums: int = 32,
                   subscription: str = "*", suspend_timeout: float = 0.0, commit_offset: int | None = None,
                   broker_id: int | None = None, timeout: float | None = None) -> Future[PullResult]:
        """pull() without waiting: many queues can long-poll at once on one connection."""
        addr, cmd, call_timeout, convert = self._prepare_pull(queue, offset, group, max_nums, subscription,
                                                              suspend_timeout, commit_offset, broker_id, timeout)
        fut: Future[PullResult] = self._pool.invoke_async(addr, cmd, call_timeout, convert)
        fut.add_done_callback(lambda f: self._pull_failed(queue) if isinstance(f.exception(), RemotingError)
                              else None)
        return fut

    def _prepare_pull(self, queue: MessageQueue, offset: int, group: str, max_nums: int, subscription: str,
                      suspend: float, commit_offset: int | None, broker_id: int | None,
                      timeout: float | None) -> tuple[str, RemotingCommand, float, Callable[[RemotingCommand], Any]]:
        addr, target_id = self._pull_target(queue, broker_id)
        commit = commit_offset if target_id == MASTER_ID else None  # slaves must not be asked to commit
        cmd = pull_request(group, queue, offset, max_nums, subscription, int(suspend * 1000), commit,
                           self._sub_version)

        def convert(resp: RemotingCommand) -> PullResult:
            result = parse_pull_response(resp, subscription, addr)
            if broker_id is None:
                self._suggested[queue] = result.suggest_which_broker_id
            return result

        return addr, cmd, timeout or suspend + self.rpc_timeout, convert

    def _pull_target(self, queue: MessageQueue, broker_id: int | None) -> tuple[str, int]:
        broker = self.topic_route(queue.topic).broker(queue.broker_name)
        if broker_id is not None:
            addr = broker.broker_addrs.get(broker_id)
            if addr is None:
                raise NoRouteError(f"broker {queue.broker_name} has no id {broker_id} in the route")
            return addr, broker_id
        found = broker.addr_for_pull(self._suggested.get(queue, MASTER_ID))
        if found is None:
            raise NoRouteError(f"broker {queue.broker_name} has no address in the route")
        return found

    def _pull_failed(self, queue: MessageQueue) -> None:
        # The suggested replica may be the one that is gone: go back to the master and look for news.
        self._suggested.pop(queue, None)
        self.request_route_refresh(queue.topic)

    # ------------------------------------------------------------ offsets

    def _queue_addr(self, queue: MessageQueue) -> str:
        """The master of the queue's group, or a replica when it has none right now."""
        addr = self.topic_route(queue.topic).broker(queue.broker_name).select_addr()
        if addr is None:
            raise NoRouteError(f"broker {queue.broker_name} has no address in the route")
        return addr

    def _queue_call(self, queue: MessageQueue, code: int, *ok: int, **fields: object) -> RemotingCommand:
        addr = self._queue_addr(queue)
        cmd = request(code, topic=queue.topic, queueId=queue.queue_id, bname=queue.broker_name, **fields)
        return check(self._pool.invoke(addr, cmd, self.rpc_timeout), addr, *ok)

    def query_consumer_offset(self, group: str, queue: MessageQueue) -> int | None:
        """The group's stored offset, or None when the broker has none (QUERY_NOT_FOUND)."""
        resp = self._queue_call(queue, RequestCode.QUERY_CONSUMER_OFFSET, ResponseCode.QUERY_NOT_FOUND,
                                consumerGroup=group)
        if resp.code == ResponseCode.QUERY_NOT_FOUND:
            return None
        return int(resp.ext_fields.get("offset", -1))

    def update_consumer_offset(self, group: str, queue: MessageQueue, offset: int, oneway: bool = True) -> None:
        if not oneway:
            self._queue_call(queue, RequestCode.UPDATE_CONSUMER_OFFSET, consumerGroup=group, commitOffset=offset)
            return
        cmd = request(RequestCode.UPDATE_CONSUMER_OFFSET, consumerGroup=group, topic=queue.topic,
                      queueId=queue.queue_id, commitOffset=offset, bname=queue.broker_name)
        self._pool.invoke_oneway(self._queue_addr(queue), cmd)

    def max_offset(self, queue: MessageQueue) -> int:
        return int(self._queue_call(queue, RequestCode.GET_MAX_OFFSET).ext_fields["offset"])

    def min_offset(self, queue: MessageQueue) -> int:
        return int(self._queue_call(queue, RequestCode.GET_MIN_OFFSET).ext_fields["offset"])

    def search_offset(self, queue: MessageQueue, timestamp_ms: int) -> int:
        resp = self._queue_call(queue, RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, timestamp=timestamp_ms)
        return int(resp.ext_fields["offset"])


def _send_failure(topic: str, attempts: int, last: Exception, ambiguous: RemotingError | None) -> Exception:
    """What a send that used up its attempts raises: ambiguous as soon as any attempt might have been stored."""
    if ambiguous is None or isinstance(last, RemotingTimeoutError):
        return last
    error = RemotingTimeoutError(f"send to {topic}: outcome unknown after {attempts} attempts (an attempt "
                                 f"failed ambiguously: {ambiguous}); last error: {last}")
    error.__cause__ = last
    return error


def local_ip(towards: str) -> str:
    """The local address used to reach ``towards`` (no packet is sent); 127.0.0.1 if that fails."""
    try:
        host, port = split_addr(towards)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((socket.gethostbyname(host), port))
            return str(probe.getsockname()[0])
    except (OSError, RemotingError):
        return "127.0.0.1"
