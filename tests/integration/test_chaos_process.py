"""Process faults on a real proxied cluster: kill-master, kill-namesrv, pause, restart, and their heals."""
from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from cluster.local.process import pid_alive
from harness.errors import ConfigError
from harness.remoting.mq import Message
from tests.helpers import wait_until
from tests.integration.chaos_cluster import (TOPIC, all_registered, client, route_master, running_cluster,
                                             state_of)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_kill_master_of_a_single_replica_group_leaves_it_without_master_until_healed(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=2, groups=2) as chaos:
        before = state_of(chaos)
        master = before.node("broker-a-0")
        assert route_master(before, "broker-a") == master.addr
        effect = chaos.inject("kill-master", ["broker-a"], {})
        assert effect.targets == ["broker-a-0"] and not pid_alive(master.pid, master.create_time)
        # Its connections closed with it, so the NameServers drop it at once (no expiry wait).
        wait_until(lambda: route_master(before, "broker-a") is None, timeout=10, message="no master in the route")
        assert route_master(before, "broker-b") == before.node("broker-b-0").addr
        chaos.heal(effect.fault_id)
        after = state_of(chaos)
        assert after.node("broker-a-0").pid != master.pid  # the state file follows the restart
        wait_until(lambda: route_master(after, "broker-a") == master.addr, timeout=15, message="master back")
        assert chaos.active() == []


def test_all_namesrvs_down_producers_keep_sending_on_cached_routes(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=3, groups=2) as chaos:
        state = state_of(chaos)
        with client(state, rpc_timeout=2.0) as mq:
            mq.send(Message(TOPIC, b"warm-up"))  # the route is cached from here on
            effect = chaos.inject("kill-namesrv", ["all"], {})
            assert sorted(effect.targets) == ["ns-0", "ns-1", "ns-2"]
            assert not any(pid_alive(n.pid, n.create_time) for n in state.nodes if n.role == "namesrv")
            sent = [mq.send(Message(TOPIC, f"m{i}".encode())) for i in range(20)]
            assert {r.status for r in sent} == {"SEND_OK"}
            assert {r.queue.broker_name for r in sent} == {"broker-a", "broker-b"}
        chaos.heal(effect.fault_id)
        wait_until(lambda: all_registered(state_of(chaos)), timeout=15, message="brokers registered again")


def test_pause_freezes_a_node_and_heal_resumes_it(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        node = state_of(chaos).node("broker-a-0")
        effect = chaos.inject("pause", ["broker-a-0"], {})
        assert psutil.Process(node.pid).status() == psutil.STATUS_STOPPED
        chaos.heal(effect.fault_id)
        with pytest.raises(ConfigError, match="no active fault"):
            chaos.heal(effect.fault_id)
        assert psutil.Process(node.pid).status() != psutil.STATUS_STOPPED
        with client(state_of(chaos)) as mq:
            assert mq.send(Message(TOPIC, b"after pause")).status == "SEND_OK"


def test_restart_and_stop_start_bring_nodes_back_with_new_pids(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=1, groups=1) as chaos:
        old = state_of(chaos).node("ns-0").pid
        started = time.monotonic()
        chaos.inject("restart", ["ns-0"], {})
        assert chaos.active() == [] and state_of(chaos).node("ns-0").pid != old
        assert time.monotonic() - started < 15
        stop = chaos.inject("stop", ["broker-a-0"], {})
        assert [e.fault_id for e in chaos.active()] == [stop.fault_id]
        chaos.inject("start", ["broker-a-0"], {})  # settles the stop
        assert chaos.active() == []
        wait_until(lambda: all_registered(state_of(chaos)), timeout=15, message="broker registered again")
