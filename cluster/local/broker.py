"""The embedded broker: a message store behind a RocketMQ remoting server, registered with NameServers.

``start`` opens the store (recovering it), listens, registers with every NameServer, then keeps
registering every ``register_interval`` (at once after a topic is created), flushes the store on a timer
(ASYNC_FLUSH), persists consumer offsets every few seconds and expires silent clients. ``stop``
unregisters (best effort), stops serving and closes the store.

Request handlers live in broker_send (send, send back), broker_pull (pull, long polling), broker_offsets,
broker_clients (heartbeats) and broker_admin (topics, runtime info).
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from cluster.local.broker_admin import AdminProcessor
from cluster.local.broker_clients import ClientManager
from cluster.local.broker_common import RequestRejected, response
from cluster.local.broker_offsets import OffsetProcessor
from cluster.local.broker_pull import PullProcessor
from cluster.local.broker_send import SendProcessor
from cluster.local.broker_topics import TopicManager
from cluster.local.commitlog import Entry
from cluster.local.config import BrokerConfig
from cluster.local.nsclient import AsyncRemotingClient
from cluster.local.records import NewMessage
from cluster.local.server import RemotingServer
from cluster.local.store import MessageStore, PutResult
from harness.errors import RemotingError
from harness.remoting import jsonbody
from harness.remoting.codes import MASTER_ID, VERSION_V4_9_8, RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand
from harness.remoting.message import HostAddress

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5  # flushIntervalCommitLog
OFFSET_PERSIST_INTERVAL = 5.0  # flushConsumerOffsetInterval
_UNREGISTER_TIMEOUT = 2.0


class Replication(Protocol):
    """What a replication layer (Raft) plugs into the send path; None for a single replica.

    With one, the store must not commit by itself (``store.auto_commit = False``): the layer calls
    ``store.dispatch_committed`` as its commit index advances and ``store.rebuild_offsets`` after it
    truncates the log. A DLedger adapter maps NotLeaderError to (SERVICE_NOT_AVAILABLE, ...) and
    PendingFull / QuorumTimeout / LeadershipLost to (SYSTEM_ERROR, "[PC_SYNCHRONIZED]...")."""

    def refuse_write(self) -> tuple[int, str] | None:
        """(code, remark) when this replica must not take writes now (not the leader), else None."""

    def append(self, payloads: list[bytes]) -> list[Entry]:
        """Append as leader; raise RequestRejected when the records were certainly not stored."""

    async def wait_committed(self, index: int) -> tuple[int, str] | None:
        """Wait until ``index`` is committed; (code, remark) if it cannot be (quorum timeout, lost lead)."""


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.timing = config.timing
        self.broker_id = config.broker_id
        self.replication: Replication | None = None
        self.server = RemotingServer(f"broker {config.node_id}", config.host, config.port,
                                     idle_timeout=config.timing.channel_idle_timeout)
        self.namesrvs = [AsyncRemotingClient(addr, config.timing.register_timeout) for addr in config.namesrv_addrs]
        self._registered: dict[str, bool] = {}
        self._register_now: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Made in start(): the store is opened (and recovered) there, not in the constructor.
        self.store: MessageStore
        self.topics: TopicManager
        self.clients: ClientManager
        self.pulls: PullProcessor

    @property
    def is_master(self) -> bool:
        return self.broker_id == MASTER_ID

    def suggest_broker_id(self) -> int:
        """suggestWhichBrokerId of pull responses: the master, since slave reads are never suggested."""
        return MASTER_ID

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.store = MessageStore(Path(self.config.data_dir) / "store", self.config.store_host)
        self.topics = TopicManager(self.store.topics, self.config, self.request_registration)
        self.topics.init_defaults()
        self.clients = ClientManager(self)
        self.pulls = PullProcessor(self)
        for processor in (SendProcessor(self), self.pulls, OffsetProcessor(self), self.clients,
                          AdminProcessor(self)):
            processor.register(self.server)
        await self.server.start()
        self._register_now = asyncio.Event()
        await self.register_all()
        for loop in (self._register_loop, self._flush_loop, self._offsets_loop, self._expiry_loop):
            self._tasks.append(asyncio.create_task(loop()))
        logger.info("broker %s (%s, id %s) serving on %s, advertised as %s", self.config.broker_name,
                    self.config.cluster_name, self.broker_id, self.config.listen_addr, self.config.store_host)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.unregister_all()
        self.pulls.drop_all()
        await self.server.stop()
        for client in self.namesrvs:
            await client.close()
        self.store.close()
        logger.info("broker %s stopped; store closed", self.config.node_id)

    # ------------------------------------------------------------------ send path hooks
    def put(self, topic: str, queue_id: int, messages: Sequence[NewMessage], born_host: bytes) -> PutResult:
        """Store messages: straight into the commit log, or through the replication layer."""
        append = self.replication.append if self.replication is not None else None
        return self.store.put_messages(topic, queue_id, messages, born_host, append)

    def check_writable(self) -> None:
        refusal = self.replication.refuse_write() if self.replication is not None else None
        if refusal is not None:
            raise RequestRejected(*refusal)

    def answer_after_commit(self, request: RemotingCommand, result: PutResult,
                            build: Callable[[RemotingCommand, PutResult], RemotingCommand]
                            ) -> RemotingCommand | Awaitable[RemotingCommand]:
        """The response now (single replica: the append is the commit), or once replication commits it."""
        if self.replication is None:
            return build(request, result)
        return self._after_commit(self.replication, request, result, build)

    async def _after_commit(self, replication: Replication, request: RemotingCommand, result: PutResult,
                            build: Callable[[RemotingCommand, PutResult], RemotingCommand]) -> RemotingCommand:
        failure = await replication.wait_committed(result.last_index)
        if failure is not None:
            return response(request, failure[0], failure[1])
        return build(request, result)

    # ------------------------------------------------------------------ NameServer registration
    def request_registration(self) -> None:
        """Register again as soon as possible (after a topic change)."""
        if self._register_now is not None:
            self._register_now.set()

    def registration_request(self) -> RemotingCommand:
        body = jsonbody.dumps({"topicConfigSerializeWrapper": self.store.topics.wrapper_json(),
                               "filterServerList": []})
        host = HostAddress.parse(self.config.store_host)
        return RemotingCommand(code=RequestCode.REGISTER_BROKER, language="JAVA", version=VERSION_V4_9_8,
                               body=body, ext_fields={
                                   "brokerAddr": self.config.store_host, "brokerId": str(self.broker_id),
                                   "brokerName": self.config.broker_name, "clusterName": self.config.cluster_name,
                                   "haServerAddr": f"{host.ip}:{host.port + 1}", "compressed": "false",
                                   "bodyCrc32": str(zlib.crc32(body) & 0x7FFFFFFF)})

    async def register_all(self) -> None:
        """REGISTER_BROKER with every NameServer in parallel; failures are logged, never raised."""
        if self.namesrvs:
            await asyncio.gather(*(self._register_one(client) for client in self.namesrvs))

    async def _register_one(self, client: AsyncRemotingClient) -> None:
        try:
            reply = await client.invoke(self.registration_request())
        except RemotingError as exc:
            logger.warning("registration failed with namesrv %s: %s", client.addr, exc)
            self._registered[client.addr] = False
            return
        if reply.code != ResponseCode.SUCCESS:
            logger.warning("registration failed with namesrv %s: code %s %s", client.addr, reply.code, reply.remark)
            self._registered[client.addr] = False
            return
        level = logging.DEBUG if self._registered.get(client.addr) else logging.INFO
        logger.log(level, "registered with namesrv %s", client.addr)
        self._registered[client.addr] = True

    async def unregister_all(self) -> None:
        request = {"brokerAddr": self.config.store_host, "brokerId": str(self.broker_id),
                   "brokerName": self.config.broker_name, "clusterName": self.config.cluster_name}

        async def one(client: AsyncRemotingClient) -> None:
            cmd = RemotingCommand(code=RequestCode.UNREGISTER_BROKER, language="JAVA", version=VERSION_V4_9_8,
                                  ext_fields=dict(request))
            try:
                await client.invoke(cmd, timeout=min(_UNREGISTER_TIMEOUT, self.timing.register_timeout))
                logger.info("unregistered from namesrv %s", client.addr)
            except RemotingError as exc:
                logger.info("unregister from namesrv %s failed: %s", client.addr, exc)

        await asyncio.gather(*(one(client) for client in self.namesrvs))

    # ------------------------------------------------------------------ periodic work
    async def _register_loop(self) -> None:
        assert self._register_now is not None
        while True:
            try:
                await asyncio.wait_for(self._register_now.wait(), self.timing.register_interval)
            except asyncio.TimeoutError:
                pass
            self._register_now.clear()
            await self.register_all()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await asyncio.to_thread(self.store.flush)
            except OSError:
                logger.exception("store flush failed")

    async def _offsets_loop(self) -> None:
        while True:
            await asyncio.sleep(OFFSET_PERSIST_INTERVAL)
            try:
                self.store.offsets.persist()
            except OSError:
                logger.exception("consumer offsets could not be persisted")

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.timing.channel_idle_timeout / 4))
            self.clients.expire_idle()
