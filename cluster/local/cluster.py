"""The embedded cluster as a whole: bring a topology up as node processes, find it again, take it down."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cluster.local.config import BrokerConfig, NamesrvConfig, NodeConfig, Timing, TopicSpec, timing_profile
from cluster.local.process import NodeProcess, find_node_pids, pid_alive, spawn_node, terminate_pid
from cluster.topology import PortSource, Topology, TopologySpec, plan_topology
from harness.errors import ClusterError
from harness.state import ClusterState, NodeState, load_state, save_state, state_exists

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class LocalCluster:
    """Nodes of one cluster live under ``state_dir``: configs/, logs/, nodes/<id>/ and state.json."""

    state_dir: Path

    def up(self, spec: TopologySpec, profile: str = "default", parent_pid: int = 0,
           progress: Progress | None = None) -> ClusterState:
        timing = timing_profile(profile)
        if state_exists(self.state_dir) and self.live_pids():
            raise ClusterError(f"a cluster is already running from {self.state_dir}; run `rmqh down` first")
        self._wipe()
        topology = plan_topology(spec, PortSource(spec.host))
        state = ClusterState(state_dir=str(self.state_dir), profile=profile, cluster_name=spec.cluster_name,
                             topic=spec.topic, created_utc=dt.datetime.now(dt.timezone.utc).isoformat())
        try:
            for config in self._configs(topology, timing, parent_pid):
                if progress:
                    progress(f"starting {config.node_id} on {config.listen_addr}")
                node = spawn_node(config, self.state_dir / "configs" / f"{config.node_id}.json")
                state.nodes.append(_node_state(node, topology))
                save_state(state)
        except BaseException:
            self.down()
            raise
        return state

    def _configs(self, topology: Topology, timing: Timing, parent_pid: int) -> list[NodeConfig]:
        spec = topology.spec
        configs: list[NodeConfig] = []
        for plan in topology.namesrvs:
            configs.append(NamesrvConfig(node_id=plan.node_id, host=spec.host, port=plan.port,
                                         data_dir=self._data_dir(plan.node_id), log_file=self._log(plan.node_id),
                                         timing=timing, parent_pid=parent_pid))
        ns_addrs = tuple(f"{spec.host}:{p.port}" for p in topology.namesrvs)
        topic = TopicSpec(spec.topic, spec.queues_per_group, spec.queues_per_group)
        for plan in topology.brokers:
            peers = {f"n{p.replica_index}": f"{spec.host}:{p.raft_port}"
                     for p in topology.brokers if p.group == plan.group} if spec.replicas > 1 else {}
            configs.append(BrokerConfig(
                node_id=plan.node_id, host=spec.host, port=plan.port, data_dir=self._data_dir(plan.node_id),
                log_file=self._log(plan.node_id), timing=timing, parent_pid=parent_pid,
                cluster_name=spec.cluster_name, broker_name=plan.group, broker_id=0,
                advertised_addr=f"{spec.host}:{plan.port}", namesrv_addrs=ns_addrs, topics=(topic,),
                raft_self_id=f"n{plan.replica_index}" if peers else "", raft_peers=peers,
                raft_port=plan.raft_port))
        return configs

    def _data_dir(self, node_id: str) -> str:
        return str(self.state_dir / "nodes" / node_id)

    def _log(self, node_id: str) -> str:
        return str(self.state_dir / "logs" / f"{node_id}.log")

    def _wipe(self) -> None:
        for sub in ("nodes", "configs", "logs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        (self.state_dir / "state.json").unlink(missing_ok=True)

    def state(self) -> ClusterState:
        return load_state(self.state_dir)

    def live_pids(self) -> list[int]:
        """Every node process of this cluster still running: from the state file and by scanning processes."""
        pids = set(find_node_pids(str(self.state_dir)))
        if state_exists(self.state_dir):
            try:
                state = load_state(self.state_dir)
                pids.update(n.pid for n in state.nodes if n.pid and pid_alive(n.pid, n.create_time))
            except ClusterError:
                pass
        return sorted(pids)

    def down(self, progress: Progress | None = None, timeout: float = 10.0) -> int:
        """Stop every node (brokers first, then NameServers); returns how many processes were stopped."""
        stopped = 0
        nodes: list[NodeState] = []
        if state_exists(self.state_dir):
            try:
                nodes = load_state(self.state_dir).nodes
            except ClusterError as exc:
                logger.warning("%s; falling back to a process scan", exc)
        for node in sorted(nodes, key=lambda n: n.role == "namesrv"):
            if node.pid and pid_alive(node.pid, node.create_time):
                if progress:
                    progress(f"stopping {node.node_id} (pid {node.pid})")
                terminate_pid(node.pid, node.create_time, timeout)
                stopped += 1
        for pid in find_node_pids(str(self.state_dir)):  # stragglers the state file did not know
            terminate_pid(pid, None, timeout)
            stopped += 1
        (self.state_dir / "state.json").unlink(missing_ok=True)
        return stopped


def _node_state(node: NodeProcess, topology: Topology) -> NodeState:
    plan = topology.node(node.config.node_id)
    config = node.config
    return NodeState(node_id=config.node_id, role=config.role, host=config.host, port=config.port,
                     addr=getattr(config, "advertised_addr", "") or config.listen_addr, pid=node.pid,
                     create_time=node.create_time, group=plan.group, replica_index=plan.replica_index,
                     raft_port=plan.raft_port, config_path=str(node.config_path), log_file=config.log_file,
                     data_dir=config.data_dir)
