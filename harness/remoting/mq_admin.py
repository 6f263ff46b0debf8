"""MQClient's background loop (route polling, heartbeats), consumer-group membership, server->client
requests and admin calls. A mixin so that mq.py keeps only the data path; it shares MQClient's state."""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING

from harness.errors import RemotingError, ResponseError
from harness.remoting.client import RemotingConnection
from harness.remoting.codes import MASTER_ID, RequestCode, ResponseCode
from harness.remoting.commands import (RETRY_GROUP_TOPIC_PREFIX, ConsumerRegistration, Message, check,
                                       consumer_id_list, heartbeat_body, kv_table, request)
from harness.remoting.frame import RemotingCommand
from harness.remoting.message import (PROPERTY_DELAY, PROPERTY_MAX_RECONSUME_TIMES, PROPERTY_ORIGIN_MESSAGE_ID,
                                      PROPERTY_RECONSUME_TIME, PROPERTY_RETRY_TOPIC, MessageExt)
from harness.remoting.pool import ConnectionPool
from harness.remoting.route import ClusterInfo, MessageQueue, NoRouteError, TopicRoute, parse_cluster_info

if TYPE_CHECKING:
    from harness.remoting.commands import SendResult

logger = logging.getLogger(__name__)

#: A burst of failing sends asks for many refreshes; the loop serves them at most this often.
_REFRESH_REQUEST_GAP = 0.2


class AdminMixin:
    # Provided by MQClient.
    client_id: str
    producer_group: str
    rpc_timeout: float
    route_poll_interval: float
    heartbeat_interval: float
    _pool: ConnectionPool
    _routes: dict[str, TopicRoute]

    if TYPE_CHECKING:
        def topic_route(self, topic: str, refresh: bool = False) -> TopicRoute: ...
        def namesrv_invoke(self, cmd: RemotingCommand) -> tuple[RemotingCommand, str]: ...
        def send(self, msg: Message, *, queue: MessageQueue | None = None, timeout: float | None = None,
                 retries: int = 2) -> SendResult: ...

    def _init_admin(self) -> None:
        self._consumers: dict[str, ConsumerRegistration] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._refresh_requests: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle and background loop

    def start(self) -> None:
        """Start the background loop (route polling, heartbeats); idempotent, and sends call it too."""
        if self._loop_thread is not None:
            return
        with self._start_lock:
            if self._loop_thread is None and not self._stop.is_set():
                self._loop_thread = threading.Thread(target=self._run_loop, name=f"mqclient-{self.client_id}",
                                                     daemon=True)
                self._loop_thread.start()

    def close(self) -> None:
        """Leave every consumer group, stop the loop and close all connections."""
        for group in list(self._consumers):
            self.unregister_consumer(group)
        self._stop.set()
        self._wake.set()
        thread = self._loop_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.rpc_timeout * 2)
        self._pool.close()

    def request_route_refresh(self, topic: str) -> None:
        """Have the background loop refresh ``topic`` now (after a send or pull failure)."""
        self._refresh_requests.add(topic)
        self._wake.set()

    def _run_loop(self) -> None:
        next_routes = time.monotonic() + self.route_poll_interval
        next_heartbeat = time.monotonic() + min(1.0, self.heartbeat_interval)  # Java: first one after 1 s
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            requested = set()
            while self._refresh_requests:  # set.pop is atomic: a request added meanwhile is never lost
                requested.add(self._refresh_requests.pop())
            if now >= next_routes:
                requested.update(self._routes)
                next_routes = now + self.route_poll_interval
            self._guarded(self._refresh_routes, requested)
            if now >= next_heartbeat:
                self._guarded(self._send_heartbeats, False)
                next_heartbeat = now + self.heartbeat_interval
            if requested:
                self._stop.wait(_REFRESH_REQUEST_GAP)
            self._wake.wait(max(0.0, min(next_routes, next_heartbeat) - time.monotonic()))

    def _guarded(self, task: Callable[..., object], *args: object) -> None:
        try:
            task(*args)
        except Exception:  # the loop must survive anything a cluster in chaos can do to one round
            logger.exception("%s: background task %s failed", self.client_id, getattr(task, "__name__", task))

    def _refresh_routes(self, topics: Iterable[str]) -> None:
        for topic in topics:
            if not self._stop.is_set():
                self.topic_route(topic, refresh=True)  # keeps the cached route when nothing answers

    # ------------------------------------------------------------ heartbeats and consumer groups

    def heartbeat(self, consumer_group: str | None = None, topics: Iterable[str] = ()) -> None:
        """Send HeartbeatData now; a consumer group given here is heartbeated from then on (masters only
        without consumer groups, every replica with). Raises when no broker accepted it."""
        if consumer_group is not None:
            known = self._consumers.get(consumer_group)
            new = {t: "*" for t in topics if known is None or t not in known.subscriptions}
            self.register_consumer(consumer_group, new, send=False)
        self._send_heartbeats(True)

    def register_consumer(self, group: str, subscriptions: dict[str, str], consume_from_where: str | None = None,
                          send: bool = True) -> None:
        """Add a consumer group (topic -> tag expression, merged with earlier ones) to the heartbeats."""
        old = self._consumers.get(group)
        merged = {**(old.subscriptions if old else {}), **subscriptions}
        where = consume_from_where or (old.consume_from_where if old else "CONSUME_FROM_LAST_OFFSET")
        self._consumers[group] = ConsumerRegistration(group, merged, where)
        self.start()
        if send:
            self._send_heartbeats(True)

    def unregister_consumer(self, group: str) -> None:
        """Stop heartbeating ``group`` and tell every broker (UNREGISTER_CLIENT) so peers rebalance now."""
        if self._consumers.pop(group, None) is None:
            return
        self._listeners.pop(group, None)
        cmd = request(RequestCode.UNREGISTER_CLIENT, clientID=self.client_id, consumerGroup=group)
        self._broadcast(self._broker_addrs(masters_only=False), lambda: cmd, raise_if_none=False)

    def add_rebalance_listener(self, group: str, callback: Callable[[], None]) -> None:
        """``callback()`` runs (in a reader thread: keep it short) on NOTIFY_CONSUMER_IDS_CHANGED."""
        self._listeners.setdefault(group, []).append(callback)

    def _send_heartbeats(self, raise_if_none: bool) -> None:
        for reg in list(self._consumers.values()):
            for topic in reg.subscriptions:
                try:
                    self.topic_route(topic)
                except (RemotingError, ResponseError) as exc:
                    logger.info("heartbeat: no route for %s yet: %s", topic, exc)
        body = heartbeat_body(self.client_id, self.producer_group, list(self._consumers.values()))
        addrs = self._broker_addrs(masters_only=not self._consumers)
        self._broadcast(addrs, lambda: RemotingCommand(code=RequestCode.HEART_BEAT, body=body), raise_if_none)

    def _broker_addrs(self, masters_only: bool) -> set[str]:
        addrs: set[str] = set()
        for route in list(self._routes.values()):
            for broker in route.brokers.values():
                if masters_only:
                    addrs.update(a for i, a in broker.broker_addrs.items() if i == MASTER_ID)
                else:
                    addrs.update(broker.broker_addrs.values())
        return addrs

    def _broadcast(self, addrs: Iterable[str], build: Callable[[], RemotingCommand], raise_if_none: bool) -> None:
        """One call to every address in parallel; failures are logged, and raised only if all failed."""
        futures: dict[Future[RemotingCommand], str] = {}
        errors: list[Exception] = []
        for addr in addrs:
            try:
                futures[self._pool.invoke_async(addr, build(), self.rpc_timeout)] = addr
            except RemotingError as exc:
                errors.append(exc)
        wait_futures(futures)
        accepted = 0
        for fut, addr in futures.items():
            try:
                check(fut.result(), addr)
                accepted += 1
            except (RemotingError, ResponseError) as exc:
                errors.append(exc)
        for error in errors:
            logger.info("%s: broker call failed: %s", self.client_id, error)
        if raise_if_none and errors and not accepted:
            raise errors[-1]

    def _on_server_request(self, conn: RemotingConnection, cmd: RemotingCommand) -> RemotingCommand | None:
        """Server->client requests; anything but NOTIFY_CONSUMER_IDS_CHANGED is answered as unsupported."""
        if cmd.code != RequestCode.NOTIFY_CONSUMER_IDS_CHANGED:
            return None
        group = cmd.ext_fields.get("consumerGroup", "")
        logger.debug("%s: consumer ids of %s changed (from %s)", self.client_id, group, conn.addr)
        for callback in list(self._listeners.get(group, ())):
            callback()
        return cmd.make_response(ResponseCode.SUCCESS)  # dropped: the notification is oneway

    def consumer_ids(self, group: str, topic: str) -> list[str]:
        """Client ids of ``group`` as one broker of ``topic`` knows them (empty when none is online)."""
        brokers = list(self.topic_route(topic).brokers.values())
        random.shuffle(brokers)
        last: Exception = NoRouteError(f"topic {topic} has no broker address")
        for broker in brokers:
            addr = broker.select_addr()
            if addr is None:
                continue
            try:
                resp = self._pool.invoke(addr, request(RequestCode.GET_CONSUMER_LIST_BY_GROUP,
                                                       consumerGroup=group), self.rpc_timeout)
            except RemotingError as exc:
                last = exc
                continue
            if resp.code == ResponseCode.SYSTEM_ERROR and "no consumer" in (resp.remark or ""):
                return []
            return consumer_id_list(check(resp, addr).body)
        raise last

    # ------------------------------------------------------------ admin

    def cluster_info(self) -> ClusterInfo:
        resp, addr = self.namesrv_invoke(RemotingCommand(code=RequestCode.GET_BROKER_CLUSTER_INFO))
        return parse_cluster_info(check(resp, addr).body)

    def create_topic(self, topic: str, *, read_queues: int = 8, write_queues: int = 8, perm: int = 6,
                     cluster: str | None = None) -> None:
        """UPDATE_AND_CREATE_TOPIC on every master of ``cluster`` (all clusters when None)."""
        masters = self.cluster_info().masters(cluster)
        if not masters:
            raise NoRouteError(f"no master found in cluster {cluster or '(any)'} to create {topic} on")
        cmd = request(RequestCode.UPDATE_AND_CREATE_TOPIC, topic=topic, defaultTopic="TBW102",
                      readQueueNums=read_queues, writeQueueNums=write_queues, perm=perm,
                      topicFilterType="SINGLE_TAG", topicSysFlag=0, order=False)
        for addr in masters.values():
            check(self._pool.invoke(addr, cmd, self.rpc_timeout), addr)
        if topic in self._routes:
            self.request_route_refresh(topic)

    def broker_runtime_info(self, addr: str) -> dict[str, str]:
        cmd = RemotingCommand(code=RequestCode.GET_BROKER_RUNTIME_INFO)
        return kv_table(check(self._pool.invoke(addr, cmd, self.rpc_timeout), addr).body)

    def send_back(self, msg: MessageExt, group: str, delay_level: int = 0, max_reconsume_times: int = 16) -> None:
        """Hand a message back for redelivery (CONSUMER_SEND_MSG_BACK to the broker that stored it); if
        that fails, send a copy to %RETRY%group as the Java consumer does."""
        origin_topic = msg.properties.get(PROPERTY_RETRY_TOPIC, msg.topic)
        addr = str(msg.store_host)
        cmd = request(RequestCode.CONSUMER_SEND_MSG_BACK, offset=msg.commit_log_offset, group=group,
                      delayLevel=delay_level, originMsgId=msg.msg_id, originTopic=origin_topic, unitMode=False,
                      maxReconsumeTimes=max_reconsume_times)
        try:
            check(self._pool.invoke(addr, cmd, self.rpc_timeout), addr)
            return
        except (RemotingError, ResponseError) as exc:
            logger.info("send back to %s failed (%s); sending to the retry topic instead", addr, exc)
        props = {**msg.properties, PROPERTY_RETRY_TOPIC: origin_topic,
                 PROPERTY_ORIGIN_MESSAGE_ID: msg.properties.get(PROPERTY_ORIGIN_MESSAGE_ID, msg.msg_id),
                 PROPERTY_RECONSUME_TIME: str(msg.reconsume_times + 1),
                 PROPERTY_MAX_RECONSUME_TIMES: str(max_reconsume_times),
                 PROPERTY_DELAY: str(3 + msg.reconsume_times)}
        self.send(Message(RETRY_GROUP_TOPIC_PREFIX + group, msg.body, properties=props, flag=msg.flag))
