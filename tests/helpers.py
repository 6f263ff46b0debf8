"""Shared test helpers: wait for conditions (never fixed sleeps), start real node processes on free ports."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cluster.local.config import BrokerConfig, NamesrvConfig, Timing, TopicSpec
from cluster.local.process import NodeProcess, free_port, spawn_node

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may raise while the system settles
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def namesrv_config(tmp: Path, node_id: str = "ns-0", timing: Timing | None = None) -> NamesrvConfig:
    return NamesrvConfig(node_id=node_id, host="127.0.0.1", port=free_port(), data_dir=str(tmp / node_id),
                         log_file=str(tmp / "logs" / f"{node_id}.log"), timing=timing or Timing(),
                         parent_pid=__import__("os").getpid())


def broker_config(tmp: Path, namesrv_addrs: list[str], node_id: str = "broker-a-0",
                  broker_name: str = "broker-a", timing: Timing | None = None,
                  topics: tuple[TopicSpec, ...] = (), port: int | None = None, **extra: object) -> BrokerConfig:
    return BrokerConfig(node_id=node_id, host="127.0.0.1", port=port or free_port(),
                        data_dir=str(tmp / node_id), log_file=str(tmp / "logs" / f"{node_id}.log"),
                        timing=timing or Timing(), parent_pid=__import__("os").getpid(),
                        broker_name=broker_name, namesrv_addrs=tuple(namesrv_addrs), topics=topics,
                        **extra)  # type: ignore[arg-type]


def start_node(config: NamesrvConfig | BrokerConfig, tmp: Path) -> NodeProcess:
    return spawn_node(config, tmp / "configs" / f"{config.node_id}.json")
