"""The embedded cluster as a FaultContext: node processes by signal, links through the Toxiproxy API.

Opened fresh from the state file for each locked chaos operation (``chaos.engine``), because another
command may have restarted a node (new pid) in between. A node started again keeps its saved config,
except that it is no longer tied to a supervising harness other than this process.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from chaos.toxiproxy import ToxiproxyClient, ToxiproxyError
from cluster.local.config import load_config
from cluster.local.process import pid_alive, spawn_node
from harness.errors import HarnessError
from harness.state import ClusterState, LinkState, NodeState, load_state, save_state

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 10.0


class LocalContext:
    """What faults may do to a running embedded cluster (see chaos.base.FaultContext)."""

    def __init__(self, state: ClusterState, client: ToxiproxyClient | None = None) -> None:
        self.state = state
        self.client = client
        proxied = client is not None and bool(state.links)
        self.abilities = frozenset({"process", "pause", "routes"} | ({"proxy"} if proxied else set()))

    @classmethod
    def open(cls, state_dir: Path) -> LocalContext:
        state = load_state(state_dir)
        client = ToxiproxyClient(state.proxy.host, state.proxy.port, timeout=5.0) if state.proxy else None
        return cls(state, client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> LocalContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the cluster looks like
    def nodes(self) -> list[NodeState]:
        return list(self.state.nodes)

    def links(self) -> list[LinkState]:
        return list(self.state.links)

    def node_alive(self, node_id: str) -> bool:
        node = self.state.node(node_id)
        return bool(node.pid) and pid_alive(node.pid, node.create_time)

    def master_of(self, group: str) -> str | None:
        """The node the NameServers list as brokerId 0 of ``group`` (the majority view), or None."""
        votes = collections.Counter(_master_addr(info, group) for info in self._cluster_infos())
        if not votes:
            raise HarnessError("no NameServer answered a cluster-info request; cannot tell the master")
        addr = votes.most_common(1)[0][0]
        if addr is None:
            return None
        for node in self.state.nodes:
            if node.addr == addr or f"{node.host}:{node.port}" == addr:
                return node.node_id
        raise HarnessError(f"the NameServers list {addr} as master of {group}, which is no node of this cluster")

    def _cluster_infos(self) -> list[dict[str, Any]]:
        from harness.status import cluster_info

        infos = []
        for ns in self.state.nodes:
            if ns.role == "namesrv" and self.node_alive(ns.node_id):
                try:  # the node's own port: a fault on its proxies must not hide the routes
                    infos.append(cluster_info(f"{ns.host}:{ns.port}", timeout=2.0))
                except Exception as exc:  # a paused or broken NameServer simply has no vote
                    logger.info("cluster info from %s failed: %s", ns.node_id, exc)
        return infos

    # -- processes
    def kill_node(self, node_id: str) -> None:
        _end(self._running(node_id), signal.SIGKILL, KILL_TIMEOUT)

    def stop_node(self, node_id: str) -> None:
        node = self._running(node_id)
        os.kill(node.pid, signal.SIGCONT)  # a paused node cannot act on SIGTERM
        try:
            _end(node, signal.SIGTERM, STOP_TIMEOUT)
        except HarnessError:
            _end(node, signal.SIGKILL, KILL_TIMEOUT)

    def start_node(self, node_id: str) -> None:
        """Start the node from its saved config unless it runs; the state file gets the new pid."""
        if self.node_alive(node_id):
            return
        node = self.state.node(node_id)
        config = load_config(Path(node.config_path))
        if config.parent_pid and config.parent_pid != os.getpid():
            # The node exits when its parent is not config.parent_pid; this process is its parent now.
            config = dataclasses.replace(config, parent_pid=0)
        started = spawn_node(config, Path(node.config_path))
        node.pid, node.create_time = started.pid, started.create_time
        save_state(self.state)

    def pause_node(self, node_id: str) -> None:
        node = self._running(node_id)
        os.kill(node.pid, signal.SIGSTOP)
        _wait_status(node.pid, psutil.STATUS_STOPPED)

    def resume_node(self, node_id: str) -> None:
        if self.node_alive(node_id):
            os.kill(self.state.node(node_id).pid, signal.SIGCONT)

    def _running(self, node_id: str) -> NodeState:
        if not self.node_alive(node_id):
            raise HarnessError(f"{node_id} is not running")
        return self.state.node(node_id)

    # -- links
    def add_toxic(self, link: str, name: str, type: str, stream: str, attributes: Mapping[str, int]) -> None:
        self._client().add_toxic(link, type, stream, attributes, name=name)  # type: ignore[arg-type]

    def remove_toxic(self, link: str, name: str) -> None:
        try:
            self._client().remove_toxic(link, name)
        except ToxiproxyError as exc:
            if exc.status != 404:  # already gone (healed twice, or reset by a backstop): nothing to do
                raise

    def disable_link(self, link: str) -> None:
        self._client().disable(link)

    def enable_link(self, link: str) -> None:
        self._client().enable(link)

    def reset_links(self) -> None:
        """Toxiproxy's own backstop: every proxy enabled, every toxic removed."""
        self._client().reset()

    def resume_all(self) -> list[str]:
        """SIGCONT every paused node of the cluster (a backstop for pauses whose record was lost)."""
        resumed = []
        for node in self.state.nodes:
            if self.node_alive(node.node_id) and psutil.Process(node.pid).status() == psutil.STATUS_STOPPED:
                os.kill(node.pid, signal.SIGCONT)
                resumed.append(node.node_id)
        return resumed

    def _client(self) -> ToxiproxyClient:
        if self.client is None:
            raise HarnessError("this cluster runs without proxies (--no-proxy or RMQH_PROXY=0); link faults are not possible")
        return self.client


def _master_addr(info: Mapping[str, Any], group: str) -> str | None:
    broker = (info.get("brokerAddrTable") or {}).get(group) or {}
    for broker_id, addr in (broker.get("brokerAddrs") or {}).items():
        if int(broker_id) == 0:
            return str(addr)
    return None


def _end(node: NodeState, sig: signal.Signals, timeout: float) -> None:
    """Signal the node and wait until it is gone. A zombie counts as gone: the node may be the child of
    another process (the demo harness) that reaps it only later, so waiting for the pid to vanish, as
    psutil's wait does for a process that is not our child, could take until that process gets round to it."""
    os.kill(node.pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(node.pid, node.create_time):
        if time.monotonic() > deadline:
            raise HarnessError(f"{node.node_id} (pid {node.pid}) still running {timeout:g}s after {sig.name}")
        time.sleep(0.02)


def _wait_status(pid: int, status: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if psutil.Process(pid).status() == status:
            return
        time.sleep(0.01)
    raise HarnessError(f"pid {pid} did not reach status {status!r} within {timeout:g}s")
