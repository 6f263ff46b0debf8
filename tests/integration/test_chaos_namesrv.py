"""NameServer partitions through the proxies: from brokers (expiry drops them), from clients (fail-over)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.errors import RemotingError
from tests.helpers import wait_until
from tests.integration.chaos_cluster import TOPIC, client, registered_at, running_cluster, state_of

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]


def test_partition_from_brokers_makes_that_namesrv_drop_them_after_the_expiry(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=2, groups=2) as chaos:
        state = state_of(chaos)
        brokers = {b.addr for b in state.brokers}
        started = time.monotonic()
        effect = chaos.inject("partition-namesrv", ["ns-0"], {"side": "brokers"})
        # A black hole, not a refusal: the registrations go unanswered until the expiry (fast: 12 s + scan).
        wait_until(lambda: not brokers & set(registered_at(state, "ns-0")), timeout=25, interval=0.2,
                   message="ns-0 dropping the brokers")
        took = time.monotonic() - started
        assert 11.0 < took < 20.0, took
        assert brokers <= set(registered_at(state, "ns-1"))  # the other NameServer still has them
        with client(state, namesrvs=[state.node("ns-0").addr]) as mq:  # clients still reach ns-0 itself
            assert mq.cluster_info() is not None
        chaos.heal(effect.fault_id)
        healed = time.monotonic()
        wait_until(lambda: brokers <= set(registered_at(state, "ns-0")), timeout=15, interval=0.1,
                   message="brokers back at ns-0")
        print(f"\nns-0 dropped the brokers {took:.1f}s after the partition; back {time.monotonic() - healed:.1f}s "
              "after the heal")


def test_partition_from_clients_makes_route_lookups_fail_over(tmp_path: Path) -> None:
    with running_cluster(tmp_path, namesrvs=2, groups=1) as chaos:
        state = state_of(chaos)
        chaos.inject("partition-namesrv", ["ns-0"], {"side": "clients"})
        with client(state, rpc_timeout=1.0, namesrvs=[state.node("ns-0").addr]) as only_ns0:
            with pytest.raises(RemotingError):
                only_ns0.topic_route(TOPIC, refresh=True)
        ns0_first = [state.node("ns-0").addr, state.node("ns-1").addr]
        with client(state, rpc_timeout=1.0, namesrvs=ns0_first) as mq:
            mq._ns_index = 0  # start at the partitioned one, as a client picking it at random would
            started = time.monotonic()
            route = mq.topic_route(TOPIC, refresh=True)
            assert "broker-a" in route.brokers and time.monotonic() - started >= 0.9  # one timeout, then ns-1
            assert mq._ns_index == 1  # and it sticks to the one that answered
        # Only the client side is cut: the brokers still register with ns-0.
        assert {b.addr for b in state.brokers} <= set(registered_at(state, "ns-0"))
