"""The embedded cluster as a whole: bring a topology up as node processes, find it again, take it down."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.toxiproxy import ProxySpec, ToxiproxyClient
from cluster.links import (AddressBook, DirectAddresses, ProxiedAddresses, broker_namesrv_addrs, broker_raft_peers,
                           check_resolved, plan_links, raft_id)
from cluster.local.config import BrokerConfig, NamesrvConfig, NodeConfig, Timing, TopicSpec, timing_profile
from cluster.local.ports import QuietPorts
from cluster.local.process import NodeProcess, find_node_pids, pid_alive, spawn_node
from cluster.local.stopping import stop_together
from cluster.local.proxyproc import find_proxy_pids, proxy_alive, start_proxy_server, stop_proxy_server
from cluster.topology import PortSource, Topology, TopologySpec, plan_topology
from harness.errors import ClusterError
from harness.history import History
from harness.state import (ClusterState, LinkState, NodeState, events_path, load_state, save_state,
                           state_exists)

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class LocalCluster:
    """Nodes of one cluster live under ``state_dir``: configs/, logs/, nodes/<id>/, proxy/ (the Toxiproxy
    server's marker config and port), chaos/ (active faults), state.json and events.jsonl (its history)."""

    state_dir: Path

    def up(self, spec: TopologySpec, profile: str = "default", parent_pid: int = 0,
           progress: Progress | None = None, proxy: bool | None = None) -> ClusterState:
        """Start the Toxiproxy server and populate every link's proxy (unless ``proxy`` is False, or None
        with ``RMQH_PROXY=0``), then the nodes, NameServers first. Anything started is stopped on failure."""
        timing = timing_profile(profile)
        if state_exists(self.state_dir) and self.live_pids():
            raise ClusterError(f"a cluster is already running from {self.state_dir}; run `rmqh down` first")
        self._wipe()
        ports = QuietPorts(spec.host)
        topology = plan_topology(spec, ports)
        state = ClusterState(state_dir=str(self.state_dir), profile=profile, cluster_name=spec.cluster_name,
                             topic=spec.topic, created_utc=dt.datetime.now(dt.timezone.utc).isoformat())
        try:
            book = self._network(topology, state, parent_pid, ports, progress) if proxy_wanted(proxy) \
                else DirectAddresses(topology)
            for config in self._configs(topology, timing, parent_pid, book):
                if progress:
                    progress(f"starting {config.node_id} on {config.listen_addr}")
                node = spawn_node(config, self.state_dir / "configs" / f"{config.node_id}.json")
                state.nodes.append(_node_state(node, topology, book))
                save_state(state)
        except BaseException:
            self.down()
            raise
        return state

    def _network(self, topology: Topology, state: ClusterState, parent_pid: int, ports: PortSource,
                 progress: Progress | None) -> ProxiedAddresses:
        """The proxy server, then one proxy per planned link (POST /populate), before any node starts: nodes
        are configured with the proxies' addresses, so those must exist and be bound first."""
        if progress:
            progress("starting the Toxiproxy server")
        state.proxy = start_proxy_server(self.state_dir, topology.spec.host, parent_pid)
        save_state(state)
        plans = plan_links(topology)
        host = topology.spec.host
        with ToxiproxyClient(state.proxy.host, state.proxy.port) as client:
            made = {p.name: p.listen for p in client.populate(ProxySpec(p.name, p.upstream, f"{host}:{ports()}")
                                                              for p in plans)}
        check_resolved(plans, made)
        state.links = [LinkState(p.name, p.kind, p.from_node, p.to_node, made[p.name], p.upstream) for p in plans]
        save_state(state)
        with History(events_path(self.state_dir)) as events:
            events.record("net-ready", proxy=state.proxy.kind, api=state.proxy.api, proxies=len(plans))
        return ProxiedAddresses(made)

    def _configs(self, topology: Topology, timing: Timing, parent_pid: int, book: AddressBook) -> list[NodeConfig]:
        spec = topology.spec
        configs: list[NodeConfig] = []
        for plan in topology.namesrvs:
            configs.append(NamesrvConfig(node_id=plan.node_id, host=spec.host, port=plan.port,
                                         data_dir=self._data_dir(plan.node_id), log_file=self._log(plan.node_id),
                                         timing=timing, parent_pid=parent_pid))
        topic = TopicSpec(spec.topic, spec.queues_per_group, spec.queues_per_group)
        for plan in topology.brokers:
            peers = broker_raft_peers(book, topology, plan)
            configs.append(BrokerConfig(
                node_id=plan.node_id, host=spec.host, port=plan.port, data_dir=self._data_dir(plan.node_id),
                log_file=self._log(plan.node_id), timing=timing, parent_pid=parent_pid,
                cluster_name=spec.cluster_name, broker_name=plan.group, broker_id=0,
                advertised_addr=book.client_addr(plan.node_id),
                namesrv_addrs=broker_namesrv_addrs(book, topology, plan.node_id), topics=(topic,),
                raft_self_id=raft_id(plan) if peers else "", raft_peers=peers, raft_port=plan.raft_port))
        return configs

    def _data_dir(self, node_id: str) -> str:
        return str(self.state_dir / "nodes" / node_id)

    def _log(self, node_id: str) -> str:
        return str(self.state_dir / "logs" / f"{node_id}.log")

    def _wipe(self) -> None:
        for sub in ("nodes", "configs", "logs", "proxy", "chaos"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        for name in ("state.json", "events.jsonl", "run-history"):
            (self.state_dir / name).unlink(missing_ok=True)

    def state(self) -> ClusterState:
        return load_state(self.state_dir)

    def live_pids(self) -> list[int]:
        """Every process of this cluster still running (nodes and the proxy server): from the state file
        and by scanning command lines."""
        pids = set(find_node_pids(str(self.state_dir))) | set(find_proxy_pids(self.state_dir))
        state = self._load_quietly()
        if state is not None:
            pids.update(n.pid for n in state.nodes if n.pid and pid_alive(n.pid, n.create_time))
            if state.proxy is not None and proxy_alive(state.proxy):
                pids.add(state.proxy.pid)
        return sorted(pids)

    def down(self, progress: Progress | None = None, timeout: float = 10.0) -> int:
        """Heal every active fault, stop every node (brokers first, then NameServers), then the proxy server;
        returns how many node processes were stopped."""
        state = self._load_quietly()
        self._heal_backstop(progress)
        nodes = state.nodes if state else []
        stopped = 0
        for role in ("broker", "namesrv"):  # brokers first: they unregister from NameServers still running
            group = [(n.pid, n.create_time) for n in nodes if n.role == role and n.pid]
            if progress and group:
                progress(f"stopping the {role}s ({', '.join(n.node_id for n in nodes if n.role == role)})")
            stopped += stop_together(group, timeout)
        # Stragglers the state file did not know (a harness killed half-way through up).
        stopped += stop_together([(pid, None) for pid in find_node_pids(str(self.state_dir))], timeout)
        if progress:
            progress("stopping the Toxiproxy server")
        stop_proxy_server(self.state_dir, state.proxy if state else None, timeout)  # last: nodes may use it
        (self.state_dir / "state.json").unlink(missing_ok=True)
        return stopped

    def _heal_backstop(self, progress: Progress | None) -> None:
        """Heal what chaos commands left active, so the event history closes every fault window. Imported
        here because chaos builds on this module, not the other way round."""
        if not (self.state_dir / "chaos").exists() or not state_exists(self.state_dir):
            return
        from chaos.engine import backstop

        if progress:
            progress("healing active faults")
        backstop(self.state_dir)

    def _load_quietly(self) -> ClusterState | None:
        if not state_exists(self.state_dir):
            return None
        try:
            return load_state(self.state_dir)
        except ClusterError as exc:
            logger.warning("%s; falling back to a process scan", exc)
            return None


def proxy_wanted(proxy: bool | None) -> bool:
    """Proxies front every node unless switched off explicitly or with ``RMQH_PROXY=0``."""
    if proxy is not None:
        return proxy
    return os.environ.get("RMQH_PROXY", "1").strip().lower() not in ("0", "no", "false", "off")


def _node_state(node: NodeProcess, topology: Topology, book: AddressBook) -> NodeState:
    plan = topology.node(node.config.node_id)
    config = node.config
    return NodeState(node_id=config.node_id, role=config.role, host=config.host, port=config.port,
                     addr=book.client_addr(config.node_id), pid=node.pid,
                     create_time=node.create_time, group=plan.group, replica_index=plan.replica_index,
                     raft_port=plan.raft_port, config_path=str(node.config_path), log_file=config.log_file,
                     data_dir=config.data_dir)
