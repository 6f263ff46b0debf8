"""DLedger mode of the broker: a RaftNode whose log is the store's commit log, and RocketMQ roles from it.

- The broker does not register at startup; its brokerId is -1 until the Raft role is known.
- Follower or candidate: "role change: slave", brokerId = selfId number + 1 (n0 -> 1, n2 -> 3), registered
  at once. Sends are refused with SERVICE_NOT_AVAILABLE (14); committed messages are served to pulls.
- Leader: as DLedgerRoleChangeHandler does, wait until everything in the log is committed (our term's
  no-op included) and dispatched, then "role change: master", brokerId 0, registered at once.
- A send is answered when its entries commit (a majority holds them). Certain refusals (not leader,
  pending full) store nothing; a quorum timeout or a lost leadership is ambiguous: SYSTEM_ERROR with
  "[PC_SYNCHRONIZED]...", as DLedger's OS_PAGECACHE_BUSY answer.
- Topic configs and consumer offsets travel through the log as meta entries (broker_meta), so a new
  master has them. See docs/replication.md.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.local import broker_meta as meta
from cluster.local import dledger_rules as rules
from cluster.local.broker_common import RequestRejected
from cluster.local.dledger import NotLeaderError, PendingFullError, QuorumTimeoutError, RaftError, RaftNode
from cluster.local.storemeta import TopicConfig
from harness.remoting.codes import MASTER_ID, ResponseCode

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.commitlog import Entry

logger = logging.getLogger(__name__)

#: The brokerId of a replica whose role is not known yet (DLedger forces -1 at startup).
UNKNOWN_ID = -1
Failure = tuple[int, str]


def slave_broker_id(self_id: str) -> int:
    """DLedgerRoleChangeHandler: Integer.parseInt(selfId.substring(1)) + 1."""
    return int(self_id[1:]) + 1


def failure_of(future: asyncio.Future[list[Entry]]) -> Failure | None:
    """None when the entries committed, else the (code, remark) a send is answered with."""
    if future.cancelled():
        return ResponseCode.SYSTEM_ERROR, "[PC_SYNCHRONIZED]append cancelled; it may still commit"
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, QuorumTimeoutError):  # LeadershipLostError too: both ambiguous
        return ResponseCode.SYSTEM_ERROR, f"[PC_SYNCHRONIZED]{exc}"
    return ResponseCode.SYSTEM_ERROR, f"[PC_SYNCHRONIZED]{type(exc).__name__}: {exc}"


class RaftReplication:
    """The broker's replication layer in DLedger mode (implements broker.Replication)."""

    def __init__(self, broker: Broker) -> None:
        cfg = broker.config
        self.broker = broker
        self.store = broker.store
        self.slave_id = slave_broker_id(cfg.raft_self_id)
        self.node = RaftNode(cfg.raft_self_id, cfg.raft_peers, self.store.commitlog, Path(cfg.data_dir) / "raft",
                             cfg.timing, cfg.host, cfg.raft_port, on_commit=self._on_commit,
                             on_role_change=self._on_role_change, on_truncate=self._on_truncate)
        self._futures: dict[int, asyncio.Future[list[Entry]]] = {}
        self._committed = asyncio.Event()
        self._promotion: asyncio.Task[None] | None = None
        self._announced_role: tuple[str, int] | None = None
        # Offsets move with every pull: batch them (heartbeat/2: 1 s by default, 100 ms in the fast profile).
        interval = min(1.0, cfg.timing.raft_heartbeat_interval / 2)
        self.offset_sync = meta.OffsetSync(self.append_meta, interval, lambda: broker.is_master)
        self.store.on_meta = self._apply_meta
        self.store.offsets.on_change = self._offset_changed

    async def start(self) -> None:
        await self.node.start()
        self.offset_sync.start()
        logger.info("raft %s listening on %s:%s, peers %s", self.node.self_id, self.node.listen_host,
                    self.node.listen_port, self.node.peers)

    async def stop(self) -> None:
        if self._promotion is not None:
            self._promotion.cancel()
        await self.offset_sync.stop()
        await self.node.stop()

    # ------------------------------------------------------------------ writes (broker.Replication)
    def refuse_write(self) -> Failure | None:
        if self.broker.broker_id == MASTER_ID and self.node.role == "leader":
            return None
        return (ResponseCode.SERVICE_NOT_AVAILABLE,
                f"broker {self.broker.config.broker_name} replica {self.node.self_id} is not the master "
                f"(raft role {self.node.role}, leader {self.node.leader_id or 'unknown'})")

    def append(self, payloads: list[bytes]) -> list[Entry]:
        try:
            entries, future = self.node.append_nowait(payloads)
        except NotLeaderError as exc:
            raise RequestRejected(ResponseCode.SERVICE_NOT_AVAILABLE, str(exc)) from None
        except PendingFullError as exc:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"[PC_SYNCHRONIZED]leader pending full: {exc}") from None
        self._futures[entries[-1].index] = future
        return entries

    def on_committed(self, index: int, callback: Callable[[Failure | None], None]) -> None:
        """Call ``callback(failure or None)`` once the append ending at ``index`` has an outcome."""
        future = self._futures.pop(index)
        future.add_done_callback(lambda f: callback(failure_of(f)))

    def append_meta(self, payload: bytes) -> asyncio.Future[Failure | None]:
        """Append one meta entry as leader; the future gives the commit's outcome (None = committed)."""
        outcome: asyncio.Future[Failure | None] = asyncio.get_running_loop().create_future()
        try:
            _, future = self.node.append_nowait([payload])
        except RaftError as exc:
            outcome.set_result((ResponseCode.SERVICE_NOT_AVAILABLE, str(exc)))
            return outcome
        future.add_done_callback(lambda f: outcome.done() or outcome.set_result(failure_of(f)))
        return outcome

    def replicate_topic(self, config: TopicConfig) -> asyncio.Future[Failure | None]:
        """Called before a topic is created or changed on the master; raises when this replica may not."""
        refusal = self.refuse_write()
        if refusal is not None:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, "Can't modify topic or subscription group from "
                                  "the slave broker.")
        try:
            _, future = self.node.append_nowait([meta.topic_entry(config)])
        except (NotLeaderError, PendingFullError) as exc:
            raise RequestRejected(ResponseCode.SERVICE_NOT_AVAILABLE, str(exc)) from None
        outcome: asyncio.Future[Failure | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: outcome.done() or outcome.set_result(failure_of(f)))
        return outcome

    # ------------------------------------------------------------------ commits
    def _on_commit(self, index: int) -> None:
        self.store.dispatch_committed(index)
        self._committed.set()

    def _on_truncate(self, index: int) -> None:
        self.store.rebuild_offsets()

    def _apply_meta(self, entry: Entry) -> None:
        node = self.node
        if node.role == "leader" and entry.term == node.term:
            return  # we wrote it this term from our own tables, which hold it or something newer
        try:
            data = meta.decode(entry.payload)
            for topic in [data["topic"]] if "topic" in data else data.get("topics", ()):
                self._apply_topic(TopicConfig.from_json(topic))
            for key, queue_id, offset in data.get("offsets", ()):
                self.store.offsets.apply(str(key), int(queue_id), int(offset))
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("meta entry %d is malformed, skipped: %s", entry.index, exc)

    def _apply_topic(self, config: TopicConfig) -> None:
        if self.store.topics.get(config.topic_name) != config:
            self.store.topics.put(config)
            logger.info("topic %s replicated from the master", config.topic_name)
            self.broker.request_registration()

    def _offset_changed(self, key: str, queue_id: int, offset: int) -> None:
        if self.broker.is_master:
            self.offset_sync.changed(key, queue_id, offset)

    # ------------------------------------------------------------------ roles
    def _on_role_change(self, role: str, term: int, leader_id: str | None) -> None:
        self._committed.set()  # a promotion waiting in an older term looks again and gives up
        if role == "leader":
            self._promotion = asyncio.get_running_loop().create_task(
                self._promote(term, self.node.log.last_index), name="raft-promotion")
        else:
            self._become_slave(role, term, leader_id)

    def _become_slave(self, role: str, term: int, leader_id: str | None) -> None:
        if self._promotion is not None:
            self._promotion.cancel()
            self._promotion = None
        was_master = self.broker.broker_id == MASTER_ID
        self.broker.broker_id = self.slave_id
        if was_master:
            self.offset_sync.drop()
        if self._announced_role != (role, self.slave_id):
            self._announced_role = (role, self.slave_id)
            logger.info("role change: slave (raft %s %s, term %d, leader %s)", self.node.self_id, role, term,
                        leader_id or "unknown")
            self.broker.request_registration()

    async def _promote(self, term: int, noop_index: int) -> None:
        """changeToMaster once the log is committed up to our no-op and dispatched (DLedger's catch-up)."""
        node, store = self.node, self.store
        while not (node.commit_index >= noop_index and store.dispatched_index >= node.commit_index):
            if node.role != "leader" or node.term != term:
                return
            self._committed.clear()
            await self._committed.wait()
        if node.role != "leader" or node.term != term:
            return
        store.rebuild_offsets()  # a follower's appends bypassed the store: queue offsets come from the log
        self.broker.broker_id = MASTER_ID
        self._announced_role = ("leader", MASTER_ID)
        logger.info("role change: master (raft %s, term %d, caught up at index %d)", node.self_id, term,
                    node.commit_index)
        self.broker.request_registration()
        offsets = {(key, q): o for key, queues in store.offsets.table.items() for q, o in queues.items()}
        self.append_meta(meta.snapshot_entry(list(store.topics.topics.values()), offsets))

    # ------------------------------------------------------------------ status
    def live_slave_ids(self) -> list[int]:
        """brokerIds of the followers that acknowledged the leader recently (for slave-read suggestions)."""
        node = self.node
        window = rules.election_timeout(node.timing.raft_heartbeat_interval, node.timing.raft_max_heartbeat_leak)
        now = node.now()
        return sorted(slave_broker_id(pid) for pid, rep in node.replicators.items()
                      if node.links[pid].connected and now - rep.last_ack < window)

    def runtime_keys(self) -> dict[str, object]:
        """Extra GET_BROKER_RUNTIME_INFO keys for `rmqh status`."""
        node = self.node
        return {"raftSelfId": node.self_id, "raftRole": node.role, "raftTerm": node.term,
                "raftLeaderId": node.leader_id or "", "raftCommitIndex": node.commit_index,
                "raftAppliedIndex": self.store.dispatched_index, "raftLastIndex": node.log.last_index,
                "raftPeersConnected": ",".join(sorted(p for p, link in node.links.items() if link.connected)),
                "brokerId": self.broker.broker_id}
