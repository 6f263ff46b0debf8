"""The embedded broker: a message store behind a RocketMQ remoting server, registered with NameServers.

``start`` opens the store (recovering it), listens, registers with every NameServer, then keeps
registering every ``register_interval`` (at once after a topic is created), flushes the store on a timer
(ASYNC_FLUSH), persists consumer offsets every few seconds and expires silent clients. ``stop``
unregisters (best effort), stops serving and closes the store.

With ``raft_peers`` set the broker is one replica of a DLedger-style group (broker_raft): it does not
register at startup, its brokerId follows its Raft role, and sends are answered after majority commit.

Request handlers live in broker_send (send, send back), broker_pull (pull, long polling), broker_offsets,
broker_clients (heartbeats) and broker_admin (topics, runtime info).
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cluster.local.broker_admin import AdminProcessor
from cluster.local.broker_clients import ClientManager
from cluster.local.broker_common import RequestRejected, response
from cluster.local.broker_offsets import OffsetProcessor
from cluster.local.broker_pull import PullProcessor
from cluster.local.broker_raft import UNKNOWN_ID, RaftReplication
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

if TYPE_CHECKING:
    from cluster.local.server import Connection

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5  # flushIntervalCommitLog
OFFSET_PERSIST_INTERVAL = 5.0  # flushConsumerOffsetInterval
_UNREGISTER_TIMEOUT = 2.0
_STOP_WAIT = 5.0


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

    def on_committed(self, index: int, callback: Callable[[tuple[int, str] | None], None]) -> None:
        """Call ``callback(None)`` once the append ending at ``index`` commits, or ``callback((code,
        remark))`` if it cannot be known to (quorum timeout, lost leadership). A callback, not a
        coroutine: a task per send would cost more than the rest of the send path."""


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.timing = config.timing
        self.broker_id = config.broker_id
        self.replication: Replication | None = None
        self.raft: RaftReplication | None = None
        if config.raft_peers:
            self.broker_id = UNKNOWN_ID  # the Raft role decides (DLedger forces -1 at startup)
        self.server = RemotingServer(f"broker {config.node_id}", config.host, config.port,
                                     idle_timeout=config.timing.channel_idle_timeout)
        self.namesrvs = [AsyncRemotingClient(addr, config.timing.register_timeout) for addr in config.namesrv_addrs]
        self._registered: dict[str, int | None] = {}  # namesrv -> brokerId last registered as
        self._register_now: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Made in start(): the store is opened (and recovered) there, not in the constructor.
        self.store: MessageStore
        self.topics: TopicManager
        self.clients: ClientManager
        self.pulls: PullProcessor

    @property
    def is_master(self) -> bool:
        return self.broker_id == MASTER_ID

    def suggest_broker_id(self, topic: str, queue_id: int, next_offset: int, max_offset: int) -> int:
        """suggestWhichBrokerId of a pull response (F.4). Without slaveReadEnable always the master; with
        it, a consumer lagging past the configured threshold goes to a slave: the first follower that
        acknowledged the leader recently (from the master), this slave itself (from a slave), or
        whichBrokerWhenConsumeSlowly = 1 when there is no such knowledge. Caught-up consumers go to 0."""
        cfg = self.config
        if not cfg.slave_read_enable:
            return MASTER_ID
        behind = max_offset - next_offset
        if not (self.store.lag_bytes(topic, queue_id, next_offset) > cfg.slave_read_lag_bytes
                or (cfg.slave_read_lag_messages > 0 and behind > cfg.slave_read_lag_messages)):
            return MASTER_ID
        if self.raft is None:
            return 1
        if not self.is_master:
            return self.broker_id if self.broker_id > MASTER_ID else 1
        live = self.raft.live_slave_ids()
        return live[0] if live else 1

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        replicated = bool(self.config.raft_peers)
        self.store = MessageStore(Path(self.config.data_dir) / "store", self.config.store_host,
                                  auto_commit=not replicated)
        self.topics = TopicManager(self.store.topics, self.config, self.request_registration)
        self.topics.init_defaults()
        self.clients = ClientManager(self)
        self.pulls = PullProcessor(self)
        for processor in (SendProcessor(self), self.pulls, OffsetProcessor(self), self.clients,
                          AdminProcessor(self)):
            processor.register(self.server)
        await self.server.start()
        self._register_now = asyncio.Event()
        if replicated:  # no registration now: the first Raft role announcement makes it
            self.raft = RaftReplication(self)
            self.replication = self.raft
            self.topics.replicate = self.raft.replicate_topic
            await self.raft.start()
        else:
            await self.register_all()
        for loop in (self._register_loop, self._flush_loop, self._offsets_loop, self._expiry_loop):
            self._tasks.append(asyncio.create_task(loop()))
        logger.info("broker %s (%s, id %s) serving on %s, advertised as %s", self.config.broker_name,
                    self.config.cluster_name, self.broker_id, self.config.listen_addr, self.config.store_host)

    async def stop(self) -> None:
        # Loops also watch _stopping: Python 3.11's wait_for can swallow a cancellation that arrives just as
        # the awaited call completes, and a loop that survived it would keep the process alive forever.
        self._stopping = True
        if self._register_now is not None:
            self._register_now.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_STOP_WAIT)
        if self.raft is not None:
            await self.raft.stop()
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

    def answer_after_commit(self, request: RemotingCommand, conn: Connection, result: PutResult,
                            build: Callable[[RemotingCommand, PutResult], RemotingCommand]
                            ) -> RemotingCommand | None:
        """The response now (single replica: the append is the commit), or None and the response goes out
        on ``conn`` once replication has an outcome for it."""
        if self.replication is None:
            return build(request, result)

        def answer(failure: tuple[int, str] | None) -> None:
            if request.is_oneway:
                return
            conn.send(build(request, result) if failure is None else response(request, *failure))

        self.replication.on_committed(result.last_index, answer)
        return None

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
        """REGISTER_BROKER with every NameServer in parallel; failures are logged, never raised. A replica
        whose Raft role is not known yet (brokerId -1) does not register."""
        if self.namesrvs and self.broker_id >= MASTER_ID:
            await asyncio.gather(*(self._register_one(client) for client in self.namesrvs))

    async def _register_one(self, client: AsyncRemotingClient) -> None:
        broker_id = self.broker_id
        try:
            reply = await client.invoke(self.registration_request())
        except RemotingError as exc:
            logger.warning("registration failed with namesrv %s: %s", client.addr, exc)
            self._registered[client.addr] = None
            return
        if reply.code != ResponseCode.SUCCESS:
            logger.warning("registration failed with namesrv %s: code %s %s", client.addr, reply.code, reply.remark)
            self._registered[client.addr] = None
            return
        level = logging.DEBUG if self._registered.get(client.addr) == broker_id else logging.INFO
        logger.log(level, "registered as brokerId=%d with namesrv %s", broker_id, client.addr)
        self._registered[client.addr] = broker_id

    async def unregister_all(self) -> None:
        if self.broker_id < MASTER_ID:
            return
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
            if self._stopping:
                return
            self._register_now.clear()
            await self.register_all()

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await asyncio.to_thread(self.store.flush)
            except OSError:
                logger.exception("store flush failed")

    async def _offsets_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(OFFSET_PERSIST_INTERVAL)
            try:
                self.store.offsets.persist()
            except OSError:
                logger.exception("consumer offsets could not be persisted")

    async def _expiry_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(min(10.0, self.timing.channel_idle_timeout / 4))
            self.clients.expire_idle()
