"""The broker's replication seam with a fake Raft layer: answers wait for the commit, refusals store nothing."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.local.broker import Broker
from cluster.local.broker_common import RequestRejected
from cluster.local.commitlog import Entry
from cluster.local.config import TopicSpec
from harness.remoting.codes import ResponseCode
from harness.remoting.message import decode_stored_messages
from tests.broker_testclient import BrokerTestClient
from tests.helpers import broker_config

pytestmark = pytest.mark.timeout(30)


class FakeRaft:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.leader = True
        self.commit_events: dict[int, asyncio.Event] = {}
        self.fail_commit = False
        self.tasks: list[asyncio.Future[None]] = []

    def refuse_write(self) -> tuple[int, str] | None:
        return None if self.leader else (ResponseCode.SERVICE_NOT_AVAILABLE, "not leader")

    def append(self, payloads: list[bytes]) -> list[Entry]:
        if payloads and payloads[0].count(b"refuse"):
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, "[PC_SYNCHRONIZED] pending full")
        entries = self.broker.store.commitlog.append(payloads, 7)
        self.commit_events[entries[-1].index] = asyncio.Event()
        return entries

    def on_committed(self, index: int, callback: Callable[[tuple[int, str] | None], None]) -> None:
        async def wait() -> None:
            await self.commit_events[index].wait()
            if self.fail_commit:
                callback((ResponseCode.SYSTEM_ERROR, "[PC_SYNCHRONIZED] quorum timeout"))
                return
            self.broker.store.dispatch_committed(index)
            callback(None)

        self.tasks.append(asyncio.ensure_future(wait()))


@pytest.fixture
def raft_broker(tmp_path: Path) -> Iterator[tuple[Broker, FakeRaft, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    broker = Broker(broker_config(tmp_path, [], topics=(TopicSpec("T", 1, 1),)))
    raft = FakeRaft(broker)

    async def start() -> None:
        await broker.start()
        broker.store.auto_commit = False
        broker.replication = raft

    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield broker, raft, loop
    asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_send_is_answered_only_after_commit(raft_broker: tuple[Broker, FakeRaft, asyncio.AbstractEventLoop]) -> None:
    broker, raft, loop = raft_broker
    with BrokerTestClient(broker.config.listen_addr) as c:
        opaque = c.start_send("T", b"replicated")
        with pytest.raises(TimeoutError):
            c.wait(opaque, timeout=0.3)
        assert c.pull("g", "T", 0, 0).code == ResponseCode.PULL_NOT_FOUND  # not committed: invisible
        loop.call_soon_threadsafe(raft.commit_events[1].set)
        reply = c.wait(opaque)
        assert reply.code == ResponseCode.SUCCESS and reply.ext_fields["queueOffset"] == "0"
        assert broker.store.commitlog.term_at(1) == 7
        assert [m.body for m in decode_stored_messages(c.pull("g", "T", 0, 0).body)] == [b"replicated"]


def test_refusals_and_failed_commits(raft_broker: tuple[Broker, FakeRaft, asyncio.AbstractEventLoop]) -> None:
    broker, raft, loop = raft_broker
    with BrokerTestClient(broker.config.listen_addr) as c:
        refused = c.send("T", b"refuse me")
        assert refused.code == ResponseCode.SYSTEM_ERROR and broker.store.commitlog.last_index == 0
        raft.fail_commit = True
        opaque = c.start_send("T", b"ambiguous")
        asyncio.run_coroutine_threadsafe(_set_when_ready(raft, 1), loop).result(5)
        failed = c.wait(opaque)
        assert failed.code == ResponseCode.SYSTEM_ERROR and "PC_SYNCHRONIZED" in (failed.remark or "")
        raft.leader = False
        assert c.send("T", b"follower").code == ResponseCode.SERVICE_NOT_AVAILABLE


async def _set_when_ready(raft: FakeRaft, index: int) -> None:
    while index not in raft.commit_events:
        await asyncio.sleep(0.01)
    raft.commit_events[index].set()
