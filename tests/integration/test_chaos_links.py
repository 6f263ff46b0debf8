"""Link faults through the proxies: latency, isolation of a broker, a cut Raft leader, slicing, resets."""
from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path

import pytest

from harness.errors import RemotingError
from harness.remoting.mq import Message
from tests.helpers import wait_until
from tests.integration.chaos_cluster import TOPIC, client, route_master, running_cluster, state_of, timed_send

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_latency_adds_at_least_the_configured_delay_to_a_send(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=2) as chaos:
        with client(state_of(chaos)) as mq:
            base = statistics.median(timed_send(mq, "broker-a") for _ in range(5))
            fixed = chaos.inject("latency", ["broker-a-0"], {"latency": "150", "kind": "client"})
            slow = [timed_send(mq, "broker-a") for _ in range(5)]
            other = timed_send(mq, "broker-b")
            chaos.heal(fixed.fault_id)
            jittery = chaos.inject("latency", ["broker-a-0"], {"latency": "100", "jitter": "40", "kind": "client"})
            spread = [timed_send(mq, "broker-a") for _ in range(8)]
            chaos.heal(jittery.fault_id)
            after = statistics.median(timed_send(mq, "broker-a") for _ in range(5))
        assert min(slow) >= 0.150, (base, slow)
        assert min(spread) >= 0.060 and max(spread) < 0.140 + 0.1 and max(spread) - min(spread) > 0.005, spread
        assert other < 0.1 and after < 0.1, (other, after)
        print(f"\nsend to broker-a: {base * 1000:.1f} ms; with latency 150: {statistics.median(slow) * 1000:.1f} ms "
              f"median; with 100+-40: {min(spread) * 1000:.0f}..{max(spread) * 1000:.0f} ms; healed: {after * 1000:.1f} ms")


def test_isolated_broker_times_out_and_the_client_retries_on_the_other_group(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=2) as chaos:
        state = state_of(chaos)
        with client(state, rpc_timeout=1.0) as mq:
            queues = mq.topic_route(TOPIC).publish_queues()
            effect = chaos.inject("isolate-broker", ["broker-a-0"], {})
            assert len(effect.links) == 2  # its client link and its one NameServer link
            with pytest.raises(RemotingError):  # a black hole: a timeout, not a refused connection
                mq.send(Message(TOPIC, b"to a"), queue=next(q for q in queues if q.broker_name == "broker-a"))
            results = [mq.send(Message(TOPIC, f"r{i}".encode()), retries=2) for i in range(4)]
            assert {r.queue.broker_name for r in results} == {"broker-b"}
            chaos.heal(effect.fault_id)
            wait_until(lambda: timed_send(mq, "broker-a") < 1.0, timeout=15, message="broker-a reachable")


def test_slicer_keeps_frames_intact_and_reset_peer_breaks_connections(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        with client(state_of(chaos), rpc_timeout=2.0) as mq:
            sliced = chaos.inject("slicer", ["broker-a-0"], {"kind": "client", "average-size": "7",
                                                             "size-variation": "3", "delay": "100", "stream": "both"})
            assert timed_send(mq, "broker-a") < 2.0  # many tiny pieces, one good frame
            chaos.heal(sliced.fault_id)
            reset = chaos.inject("reset-peer", ["broker-a-0"], {"kind": "client"})
            with pytest.raises(RemotingError):
                timed_send(mq, "broker-a")
            chaos.heal(reset.fault_id)
            wait_until(lambda: timed_send(mq, "broker-a") < 1.0, timeout=10, message="sends work again")


def test_bandwidth_limits_a_large_send(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        with client(state_of(chaos), rpc_timeout=10.0) as mq:
            queue = mq.topic_route(TOPIC).publish_queues()[0]
            effect = chaos.inject("bandwidth", ["broker-a-0"], {"kind": "client", "rate": "100", "stream": "upstream"})
            started = time.monotonic()
            mq.send(Message(TOPIC, b"b" * 200_000), queue=queue)  # 200 KB at 100 KB/s
            took = time.monotonic() - started
            chaos.heal(effect.fault_id)
        assert 1.7 < took < 5.0, took


@pytest.mark.skipif(importlib.util.find_spec("cluster.local.broker_raft") is None,
                    reason="broker replication (cluster/local/broker_raft.py) is not available yet")
def test_partition_leader_cuts_the_master_from_its_followers_who_elect_another(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1, replicas=3) as chaos:
        state = state_of(chaos)
        old = wait_until(lambda: route_master(state, "broker-a"), timeout=20, message="a first master")
        old_node = next(n.node_id for n in state.brokers if n.addr == old)
        effect = chaos.inject("partition-leader", ["broker-a"], {})
        assert effect.targets[0] == old_node and len(effect.links) == 4
        assert all("->" in link and old_node in link for link in effect.links)
        new = wait_until(lambda: (m := route_master(state, "broker-a")) not in (None, old) and m,
                         timeout=30, interval=0.2, message="another master in the route")
        with client(state, rpc_timeout=2.0) as mq:  # clients still reach every replica, the new master takes writes
            wait_until(lambda: mq.send(Message(TOPIC, b"to the new master")).broker_addr == new, timeout=20,
                       message="a send to the new master")
        chaos.heal(effect.fault_id)
        wait_until(lambda: route_master(state, "broker-a"), timeout=20, message="one master after the heal")
