"""DLedger-style broker groups on real processes: one NameServer and a 3-replica group (fast timing).

Roles and registration, failover after SIGKILL, sends while a slave is down, a restarted replica catching
up, an isolated leader that cannot commit, and consumer offsets and topics surviving a failover.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cluster.local.process import NodeProcess
from harness.errors import HarnessError
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.consumer import PullConsumer
from harness.remoting.message import MessageExt
from harness.remoting.mq import Message, MessageQueue, MQClient
from tests.broker_testclient import BrokerTestClient
from tests.helpers import wait_until
from tests.integration.replication_group import FAST, TOPIC, Group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def client(group: Group) -> MQClient:
    return MQClient([group.ns_addr], route_poll_interval=FAST.route_poll_interval,
                    heartbeat_interval=FAST.client_heartbeat_interval)


def drain(c: MQClient, topic: str = TOPIC, broker_id: int | None = 0) -> list[MessageExt]:
    """Every message of every queue from offset 0, read from ``broker_id`` (the master by default)."""
    out: list[MessageExt] = []
    for mq in c.topic_route(topic, refresh=True).subscribe_queues():
        offset = 0
        while True:
            result = c.pull(mq, offset, group="drain", max_nums=32, broker_id=broker_id)
            if result.status != "FOUND":
                break
            out.extend(result.messages)
            offset = result.next_begin_offset
    return out


@pytest.fixture
def group(tmp_path: Path, node_reaper: list[NodeProcess]):  # type: ignore[no-untyped-def]
    g = Group(tmp_path, node_reaper)
    yield g
    g.close()


def test_election_registers_the_leader_as_0_and_followers_by_their_ids(group: Group) -> None:
    group.start()
    master = group.wait_master()
    want = {group.addr(i): 0 if i == master else i + 1 for i in range(3)}
    wait_until(lambda: group.registered() == want, timeout=10, message=f"registrations {want}")
    follower = next(i for i in range(3) if i != master)
    with BrokerTestClient(group.addr(follower)) as slave:
        assert slave.send(TOPIC, b"to a slave").code == ResponseCode.SERVICE_NOT_AVAILABLE
        created = slave.request(RequestCode.UPDATE_AND_CREATE_TOPIC, {
            "topic": "FromSlave", "defaultTopic": "TBW102", "readQueueNums": 4, "writeQueueNums": 4,
            "perm": 6, "topicFilterType": "SINGLE_TAG"})
        assert created.code == ResponseCode.SYSTEM_ERROR
    with BrokerTestClient(group.addr(master)) as leader:
        assert leader.send(TOPIC, b"to the master").code == ResponseCode.SUCCESS


def test_master_killed_new_master_registered_and_serving(group: Group) -> None:
    group.start()
    old = group.wait_master()
    with client(group) as c:
        before = [c.send(Message(TOPIC, f"before-{i}".encode())).msg_id for i in range(20)]
        killed_at = time.monotonic()
        group.kill(old)
        new = group.wait_master(timeout=10, not_in=(old,))
        elapsed = time.monotonic() - killed_at
        # Election timeout (3 missed 200 ms heartbeats) + a 30-100 ms vote wait, then the no-op commit and the
        # registration take milliseconds: ~0.8 s. The bound leaves room for a loaded 2-core machine.
        election = FAST.raft_heartbeat_interval * FAST.raft_max_heartbeat_leak + FAST.raft_vote_max
        assert elapsed < 4 * election, f"new master registered {elapsed:.2f}s after the kill"
        result = wait_until(lambda: c.send(Message(TOPIC, b"after")), timeout=10, message="a send to the new master")
        assert result.status == "SEND_OK" and result.broker_addr == group.addr(new)
        ids = {m.msg_id for m in drain(c)}
        assert set(before) <= ids and result.msg_id in ids


def test_sends_continue_while_a_slave_is_killed(group: Group) -> None:
    group.start()
    master = group.wait_master()
    acked: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()
    with client(group) as c:
        def load() -> None:
            while not stop.is_set():
                try:
                    acked.append(c.send(Message(TOPIC, b"steady"), retries=0).msg_id)
                except HarnessError as exc:
                    errors.append(exc)
        thread = threading.Thread(target=load)
        thread.start()
        try:
            wait_until(lambda: len(acked) >= 100, timeout=20, message="100 sends before the kill")
            group.kill(next(i for i in range(3) if i != master))
            mark = len(acked)
            wait_until(lambda: len(acked) >= mark + 300, timeout=20, message="300 sends after the kill")
        finally:
            stop.set()
            thread.join(10)
    assert errors == []


def test_killed_replicas_restart_and_catch_up_with_the_same_messages(group: Group) -> None:
    group.start()
    master = group.wait_master()
    follower = next(i for i in range(3) if i != master)
    with client(group) as c:
        for i in range(50):
            c.send(Message(TOPIC, f"a-{i}".encode()))
        group.kill(follower)
        for i in range(100):
            c.send(Message(TOPIC, f"b-{i}".encode()))
        group.kill(master)  # the old master goes too, once the survivor holds everything
        group.start(follower)
        new = group.wait_master(timeout=15)
        wait_until(lambda: c.send(Message(TOPIC, b"c")), timeout=10, message="a send to the new master")
        group.start(master)
        last = group.wait_caught_up()
        assert last >= 151
        expected = [m.msg_id for m in drain(c, broker_id=0)]
        assert len(expected) == 151
        for i in range(3):
            if i != new:
                assert [m.msg_id for m in drain(c, broker_id=i + 1)] == expected, f"replica {i} differs"


def test_an_isolated_leader_cannot_commit(tmp_path: Path, node_reaper: list[NodeProcess]) -> None:
    group = Group(tmp_path, node_reaper, proxied=True)
    try:
        group.start()
        old = group.wait_master()
        with BrokerTestClient(group.addr(old)) as leader:
            assert leader.send(TOPIC, b"committed").code == ResponseCode.SUCCESS
            group.mesh.isolate(f"n{old}")  # type: ignore[union-attr]
            reply = leader.wait(leader.start_send(TOPIC, b"isolated"), timeout=10)
        assert reply.code != ResponseCode.SUCCESS
        assert reply.code == ResponseCode.SERVICE_NOT_AVAILABLE or "[PC_SYNCHRONIZED]" in (reply.remark or "")
        new = group.wait_master(timeout=10, not_in=(old,))
        group.mesh.heal()  # type: ignore[union-attr]
        group.wait_caught_up()
        with client(group) as c:
            bodies = [m.body for m in drain(c)]
            assert b"committed" in bodies and b"isolated" not in bodies
            assert [m.body for m in drain(c, broker_id=old + 1)] == bodies  # the old leader dropped it
        assert group.runtime(old)["raftRole"] == "follower" and group.master() == new
    finally:
        group.close()


def test_consumer_offsets_and_topics_survive_failover(group: Group) -> None:
    group.start()
    old = group.wait_master()
    with client(group) as c:
        c.create_topic("Created", read_queues=2, write_queues=2)
        for i in range(3):
            wait_until(lambda i=i: "Created" in _topics(group, i), timeout=10, message=f"topic on replica {i}")
        for i in range(40):
            c.send(Message(TOPIC, f"old-{i}".encode()))
        consumed = _consume(c, "offsets-group", 40)
        assert len(consumed) == 40
        queue = MessageQueue(TOPIC, "broker-a", 0)
        committed = c.query_consumer_offset("offsets-group", queue)
        group.kill(old)
        group.wait_master(timeout=10, not_in=(old,))
        wait_until(lambda: c.send(Message(TOPIC, b"probe")), timeout=10, message="the new master")
        assert wait_until(lambda: c.query_consumer_offset("offsets-group", queue) == committed, timeout=10,
                          message="the committed offset on the new master")
        for i in range(10):
            c.send(Message(TOPIC, f"new-{i}".encode()))
        rest = _consume(c, "offsets-group", 11)
        assert sorted(rest) == sorted([b"probe"] + [f"new-{i}".encode() for i in range(10)])
        assert "Created" in _topics(group, group.wait_master())


def _consume(c: MQClient, group_name: str, count: int) -> list[bytes]:
    """Consume ``count`` messages with a fresh consumer (FIRST when the group has no offset), plus whatever
    else arrives within one more short poll, then close it (a synchronous commit)."""
    bodies: list[bytes] = []
    with PullConsumer(c, group_name, TOPIC, consume_from="FIRST", suspend=1.0, rebalance_interval=1.0,
                      commit_interval=0.2, error_backoff=0.2) as consumer:
        deadline = time.monotonic() + 30
        while len(bodies) < count and time.monotonic() < deadline:
            bodies.extend(m.body for m in consumer.poll(timeout=0.5))
        bodies.extend(m.body for m in consumer.poll(timeout=0.5))  # a rewind would show up here
    return bodies


def _topics(group: Group, i: int) -> str:
    with BrokerTestClient(group.addr(i)) as b:
        return b.request(RequestCode.GET_ALL_TOPIC_CONFIG).body.decode()
