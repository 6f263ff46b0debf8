"""Replicated groups under faults and reads from slaves, on real processes (fast timing).

The chaos test kills random single replicas (SIGKILL) and restarts them while clients keep sending, then
reads every queue from offset 0 and checks that every acknowledged message is there (duplicates from
retried ambiguous sends are allowed and counted).
"""
from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from cluster.local.process import NodeProcess
from harness.errors import HarnessError, RemotingTimeoutError
from harness.remoting.mq import Message, MessageQueue
from tests.helpers import wait_until
from tests.integration.replication_group import TOPIC, Group
from tests.integration.test_replication import client, drain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Load:
    """Threads sending synchronously (with the client's retries), recording every SEND_OK id."""

    def __init__(self, group: Group, threads: int = 2) -> None:
        self.client = client(group)
        self.acked: list[str] = []
        self.ambiguous = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        self.client.start()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)

    def _run(self, n: int) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            try:
                self.acked.append(self.client.send(Message(TOPIC, f"t{n}-{seq}".encode())).msg_id)
            except RemotingTimeoutError:
                self.ambiguous += 1
            except HarnessError:
                self.failed += 1  # certainly not stored (no master yet, refused): back off a little
                self._stop.wait(0.01)

    def wait_more(self, count: int, why: str) -> None:
        mark = len(self.acked)
        wait_until(lambda: len(self.acked) >= mark + count, timeout=30, interval=0.05, message=why)


def test_random_single_node_kills_under_load_lose_no_acknowledged_message(
        tmp_path: Path, node_reaper: list[NodeProcess]) -> None:
    group = Group(tmp_path, node_reaper)
    rng = random.Random(20240611)
    try:
        group.start()
        group.wait_master()
        with Load(group) as load:
            load.wait_more(200, "sends before the first kill")
            for cycle in range(6):
                # Every other kill hits the master (the interesting case); the others any replica.
                victim = group.wait_master() if cycle % 2 == 0 else rng.choice(group.live())
                group.kill(victim)
                load.wait_more(150, f"sends after killing replica {victim} (cycle {cycle})")
                group.start(victim)
                load.wait_more(150, f"sends after restarting replica {victim} (cycle {cycle})")
        group.wait_caught_up()
        with client(group) as c:
            stored = [m.msg_id for m in drain(c)]
            missing = set(load.acked) - set(stored)
            duplicates = len(stored) - len(set(stored))
            print(f"acknowledged {len(load.acked)}, stored {len(stored)}, duplicates {duplicates}, "
                  f"ambiguous {load.ambiguous}, failed {load.failed}")
            assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
            for i in range(3):  # every replica holds the very same queues
                if group.runtime(i)["raftRole"] != "leader":
                    assert [m.msg_id for m in drain(c, broker_id=i + 1)] == stored, f"replica {i} differs"
    finally:
        group.close()


def test_slave_reads_redirect_lagging_consumers(tmp_path: Path, node_reaper: list[NodeProcess]) -> None:
    group = Group(tmp_path, node_reaper, queues=1, slave_read_enable=True, slave_read_lag_messages=5)
    try:
        group.start()
        master = group.wait_master()
        slaves = {i + 1 for i in range(3) if i != master}
        mq = MessageQueue(TOPIC, "broker-a", 0)
        with client(group) as c:
            for i in range(50):
                c.send(Message(TOPIC, f"m{i}".encode()), queue=mq)
            group.wait_caught_up()
            first = c.pull(mq, 0, group="g", max_nums=10, broker_id=0)
            assert first.status == "FOUND" and first.suggest_which_broker_id in slaves  # 40 behind > 5
            slave = first.suggest_which_broker_id
            on_slave = c.pull(mq, 10, group="g", max_nums=10, broker_id=slave)
            assert [m.body for m in on_slave.messages] == [f"m{i}".encode() for i in range(10, 20)]
            assert on_slave.suggest_which_broker_id == slave  # still lagging: stay on the slave
            caught_up = c.pull(mq, 45, group="g", max_nums=10, broker_id=slave)
            assert caught_up.status == "FOUND" and caught_up.suggest_which_broker_id == 0
            beyond = c.pull(mq, 60, group="g", broker_id=slave)  # not an offset move on a slave
            assert beyond.status == "NO_MATCHED_MSG" and beyond.next_begin_offset == 60
            assert c.pull(mq, 45, group="g", broker_id=0).suggest_which_broker_id == 0
            # Following the suggestions: the second pull goes to the slave the master named.
            c.pull(mq, 0, group="follow", max_nums=10)
            followed = c.pull_async(mq, 10, group="follow", max_nums=10)
            assert followed.result(5).messages[0].body == b"m10"
    finally:
        group.close()


def test_slaves_without_slave_read_serve_and_redirect_to_the_master(
        tmp_path: Path, node_reaper: list[NodeProcess]) -> None:
    group = Group(tmp_path, node_reaper, queues=1)
    try:
        group.start()
        master = group.wait_master()
        slave = next(i for i in range(3) if i != master) + 1
        mq = MessageQueue(TOPIC, "broker-a", 0)
        with client(group) as c:
            for i in range(20):
                c.send(Message(TOPIC, f"m{i}".encode()), queue=mq)
            group.wait_caught_up()
            served = c.pull(mq, 0, group="g", max_nums=32, broker_id=slave)
            assert len(served.messages) == 20 and served.suggest_which_broker_id == 0
            assert c.pull(mq, 0, group="g", broker_id=0).suggest_which_broker_id == 0
    finally:
        group.close()
