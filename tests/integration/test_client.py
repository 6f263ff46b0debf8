"""The MQ client against real node processes (our NameServer and broker) on free loopback ports."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.local.config import TIMING_PROFILES, TopicSpec
from cluster.local.process import NodeProcess, free_port, kill_node, stop_node
from harness.errors import RemotingConnectError, RemotingError, RemotingTimeoutError
from harness.remoting.consumer import PullConsumer
from harness.remoting.mq import Message, MessageQueue, MQClient, SendResult
from tests.helpers import broker_config, namesrv_config, start_node, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FAST = TIMING_PROFILES["fast"]
TOPIC = "T"


@dataclass
class Cluster:
    namesrvs: list[NodeProcess]
    broker: NodeProcess

    @property
    def namesrv_addrs(self) -> list[str]:
        return [n.config.listen_addr for n in self.namesrvs]


@pytest.fixture
def cluster(tmp_path: Path, node_reaper: list[NodeProcess]) -> Cluster:
    namesrvs = []
    for i in range(2):
        node = start_node(namesrv_config(tmp_path, f"ns-{i}", timing=FAST), tmp_path)
        node_reaper.append(node)
        namesrvs.append(node)
    addrs = [n.config.listen_addr for n in namesrvs]
    broker = start_node(broker_config(tmp_path, addrs, timing=FAST, topics=(TopicSpec(TOPIC, 4, 4),)), tmp_path)
    node_reaper.append(broker)
    for addr in addrs:  # every NameServer knows the topic before a test starts
        with MQClient([addr]) as probe:
            wait_until(lambda: probe.topic_route(TOPIC, refresh=True), timeout=15, message=f"route on {addr}")
    return Cluster(namesrvs, broker)


def client(cluster: Cluster, **kwargs: object) -> MQClient:
    return MQClient(cluster.namesrv_addrs, **kwargs)  # type: ignore[arg-type]


def drain(c: MQClient, queues: list[MessageQueue], group: str = "reader") -> list:
    messages = []
    for mq in queues:
        offset = 0
        while True:
            result = c.pull(mq, offset, group=group)
            if result.status != "FOUND":
                break
            messages.extend(result.messages)
            offset = result.next_begin_offset
    return messages


def test_route_lookup_fails_over_from_a_dead_first_namesrv(cluster: Cluster,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.remoting.mq.random.randrange", lambda n: 0)  # start at the dead one
    with MQClient([f"127.0.0.1:{free_port()}", *cluster.namesrv_addrs]) as c:
        route = c.topic_route(TOPIC)
        assert len(route.publish_queues()) == 4
        assert c.send(Message(TOPIC, b"after fail-over")).status == "SEND_OK"


def test_with_every_namesrv_down_the_cached_route_keeps_sending(cluster: Cluster) -> None:
    with client(cluster) as c:
        route = c.topic_route(TOPIC)
        for node in cluster.namesrvs:
            stop_node(node, timeout=5)
        assert c.topic_route(TOPIC, refresh=True) is route
        assert {c.send(Message(TOPIC, b"x")).status for _ in range(5)} == {"SEND_OK"}


def test_send_then_pull_round_trip(cluster: Cluster) -> None:
    with client(cluster) as c:
        sent = [c.send(Message(TOPIC, f"body-{i}".encode(), tags="A" if i % 2 else "B", keys=(f"k{i}",),
                               properties={"n": str(i)})) for i in range(20)]
        assert {r.status for r in sent} == {"SEND_OK"}
        got = drain(c, c.topic_route(TOPIC).subscribe_queues())
        by_id = {m.msg_id: m for m in got}
        assert set(by_id) == {r.msg_id for r in sent}
        for result in sent:
            msg = by_id[result.msg_id]
            i = int(msg.properties["n"])
            assert (msg.body, msg.tags, msg.keys) == (f"body-{i}".encode(), "A" if i % 2 else "B", [f"k{i}"])
            assert (msg.queue_id, msg.queue_offset) == (result.queue.queue_id, result.queue_offset)
            assert msg.offset_msg_id == result.offset_msg_id
        only_a = c.pull(sent[1].queue, 0, group="reader", subscription="A", max_nums=32)
        assert {m.tags for m in only_a.messages} <= {"A"}


def test_pipelined_async_sends_all_acknowledged_with_dense_offsets(cluster: Cluster) -> None:
    with client(cluster) as c:
        futures: list[Future[SendResult]] = [c.send_async(Message(TOPIC, b"x" * 1024)) for _ in range(2000)]
        done, not_done = wait(futures, timeout=60)
        assert not not_done
        results = [f.result() for f in futures]
        assert {r.status for r in results} == {"SEND_OK"}
        per_queue = Counter(r.queue for r in results)
        for mq, count in per_queue.items():
            offsets = sorted(r.queue_offset for r in results if r.queue == mq)
            assert offsets == list(range(offsets[0], offsets[0] + count))
            assert c.max_offset(mq) == offsets[-1] + 1


def test_batch_is_stored_at_consecutive_offsets(cluster: Cluster) -> None:
    with client(cluster) as c:
        mq = MessageQueue(TOPIC, "broker-a", 1)
        result = c.send_batch([Message(TOPIC, f"b{i}".encode(), tags="bt") for i in range(10)], queue=mq)
        assert result.status == "SEND_OK" and len(result.msg_id.split(",")) == 10
        pulled = c.pull(mq, result.queue_offset, group="reader").messages
        assert [m.body for m in pulled] == [f"b{i}".encode() for i in range(10)]
        assert [m.queue_offset for m in pulled] == list(range(result.queue_offset, result.queue_offset + 10))
        assert [m.msg_id for m in pulled] == result.msg_id.split(",")


def test_consumer_and_queue_offsets(cluster: Cluster) -> None:
    with client(cluster) as c:
        mq = MessageQueue(TOPIC, "broker-a", 2)
        before = int(time.time() * 1000)
        for _ in range(5):
            c.send(Message(TOPIC, b"o"), queue=mq)
        assert (c.min_offset(mq), c.max_offset(mq)) == (0, 5)
        assert c.search_offset(mq, before - 60_000) == 0
        assert c.query_consumer_offset("fresh-group", mq) in (None, 0)
        c.update_consumer_offset("g1", mq, 3, oneway=False)
        assert c.query_consumer_offset("g1", mq) == 3
        c.update_consumer_offset("g1", mq, 4)  # oneway: visible soon after
        wait_until(lambda: c.query_consumer_offset("g1", mq) == 4, timeout=5, message="oneway commit")


def test_create_topic_and_auto_create_on_first_send(cluster: Cluster) -> None:
    with client(cluster) as c:
        assert set(c.cluster_info().masters()) == {"broker-a"}
        c.create_topic("Created", read_queues=2, write_queues=2)
        route = wait_until(lambda: c.topic_route("Created", refresh=True), timeout=10, message="created route")
        assert len(route.publish_queues()) == 2
        result = c.send(Message("AutoCreated", b"first"))
        assert result.status == "SEND_OK" and result.queue.queue_id < 4
        # Until the broker has registered the new topic, the route stays the one derived from TBW102.
        wait_until(lambda: not c.topic_route("AutoCreated", refresh=True).from_default_topic, timeout=10,
                   message="the auto-created topic's own route")
        assert len(c.topic_route("AutoCreated").publish_queues()) == 4
        assert c.broker_runtime_info(result.broker_addr)


def test_long_poll_returns_as_soon_as_a_message_arrives(cluster: Cluster) -> None:
    with client(cluster) as c:
        mq = MessageQueue(TOPIC, "broker-a", 0)
        end = c.max_offset(mq)
        fut = c.pull_async(mq, end, group="lp", suspend_timeout=10)
        done, _ = wait([fut], timeout=0.3)  # parked at the broker, not answered early
        assert not done
        start = time.monotonic()
        c.send(Message(TOPIC, b"wake"), queue=mq)
        result = fut.result(timeout=10)
        assert result.status == "FOUND" and time.monotonic() - start < 6
        assert [m.body for m in result.messages] == [b"wake"]


def test_killing_the_broker_fails_pending_calls_at_once(cluster: Cluster) -> None:
    with client(cluster) as c:
        mq = MessageQueue(TOPIC, "broker-a", 0)
        fut = c.pull_async(mq, c.max_offset(mq), group="lp", suspend_timeout=20)
        start = time.monotonic()
        kill_node(cluster.broker)
        with pytest.raises(RemotingError) as info:
            fut.result(timeout=10)
        assert not isinstance(info.value, RemotingTimeoutError)
        assert time.monotonic() - start < 5
        with pytest.raises(RemotingConnectError):
            c.send(Message(TOPIC, b"x"), retries=0)


def test_pull_consumers_share_the_queues_and_consume_everything(cluster: Cluster) -> None:
    with client(cluster) as producer:
        sent = {producer.send(Message(TOPIC, f"m{i}".encode())).msg_id for i in range(200)}
    c1, c2 = client(cluster, heartbeat_interval=1.0), client(cluster, heartbeat_interval=1.0)
    consumers = [PullConsumer(c, "grp", TOPIC, consume_from="FIRST", rebalance_interval=0.5, suspend=1.0)
                 for c in (c1, c2)]
    try:
        for consumer in consumers:
            consumer.start()
        got: list[str] = []

        def consumed_all() -> bool:
            for consumer in consumers:
                got.extend(m.msg_id for m in consumer.poll(timeout=0.2))
            return set(got) >= sent and all(len(cons.assignment) == 2 for cons in consumers)

        wait_until(consumed_all, timeout=30, message="both consumers assigned and everything consumed")
        assert set(consumers[0].assignment).isdisjoint(consumers[1].assignment)
        consumers[0].close()
        wait_until(lambda: consumers[1].poll(timeout=0.1) is not None and len(consumers[1].assignment) == 4,
                   timeout=15, message="the survivor takes every queue")
        consumers[1].commit(sync=True)
        for mq in consumers[1].assignment:
            assert c2.query_consumer_offset("grp", mq) == c2.max_offset(mq)
    finally:
        for consumer in consumers:
            consumer.close()
        c1.close()
        c2.close()


def test_send_back_redelivers_through_the_retry_topic_then_the_dlq(cluster: Cluster) -> None:
    with client(cluster) as c:
        mq = MessageQueue(TOPIC, "broker-a", 3)
        c.send(Message(TOPIC, b"again", tags="sb"), queue=mq)
        msg = c.pull(mq, 0, group="sbgrp").messages[0]
        c.send_back(msg, "sbgrp")
        retry_mq = MessageQueue("%RETRY%sbgrp", "broker-a", 0)
        wait_until(lambda: c.topic_route(retry_mq.topic, refresh=True), timeout=10, message="retry topic route")
        retried = c.pull(retry_mq, 0, group="sbgrp").messages
        assert [(m.body, m.reconsume_times, m.properties["RETRY_TOPIC"]) for m in retried] == [(b"again", 1, TOPIC)]
        assert retried[0].msg_id == msg.msg_id
        c.send_back(retried[0], "sbgrp", max_reconsume_times=1)  # retried enough: dead-letter queue
        dlq_mq = MessageQueue("%DLQ%sbgrp", "broker-a", 0)
        wait_until(lambda: c.topic_route(dlq_mq.topic, refresh=True), timeout=10, message="DLQ route")
        assert [m.body for m in c.pull(dlq_mq, 0, group="sbgrp").messages] == [b"again"]


def test_consumer_jumps_over_an_illegal_offset(cluster: Cluster) -> None:
    with client(cluster) as c:
        for mq in c.topic_route(TOPIC).subscribe_queues():
            c.update_consumer_offset("jumpers", mq, 10_000, oneway=False)  # far beyond every queue's end
        consumer = PullConsumer(c, "jumpers", TOPIC, rebalance_interval=0.5, suspend=1.0)
        with consumer:
            consumer.poll(timeout=0.5)
            wait_until(lambda: len(consumer.assignment) == 4, timeout=10, message="assignment")
            sent = {c.send(Message(TOPIC, b"after")).msg_id for _ in range(8)}
            got: set[str] = set()
            wait_until(lambda: got.update(m.msg_id for m in consumer.poll(timeout=0.2)) or got >= sent,
                       timeout=15, message="messages after the corrected offsets")


GEVENT_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import sys, gevent
from concurrent.futures import wait
from harness.remoting.mq import MQClient, Message
from harness.remoting.consumer import PullConsumer

addrs = sys.argv[1].split(",")
with MQClient(addrs) as c:
    ids = set()
    jobs = [gevent.spawn(c.send, Message("T", b"g%d" % i)) for i in range(50)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    ids |= {j.value.msg_id for j in jobs}
    futures = [c.send_async(Message("T", b"a%d" % i)) for i in range(200)]
    wait(futures, timeout=30)
    ids |= {f.result().msg_id for f in futures}
    consumer = PullConsumer(c, "gevent-grp", "T", consume_from="FIRST", suspend=1.0)
    got = set()
    with consumer:
        for _ in range(100):
            got |= {m.msg_id for m in consumer.poll(timeout=0.5)}
            if got >= ids:
                break
    assert got >= ids, (len(got), len(ids))
print("GEVENT-OK")
"""


def test_client_and_consumer_work_under_gevent(cluster: Cluster) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT, ",".join(cluster.namesrv_addrs)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GEVENT-OK" in proc.stdout
