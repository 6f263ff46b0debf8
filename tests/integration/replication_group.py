"""Test support for replicated broker groups on real processes: one NameServer, one DLedger-style group of
broker processes (n0.. as broker-a-0..), optionally with every directed peer link a->b through its own
cuttable TCP proxy (so a replica can really be isolated from its peers while clients still reach it)."""
from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

from cluster.local.config import TIMING_PROFILES, BrokerConfig, Timing, TopicSpec
from cluster.local.process import NodeProcess, free_port, stop_node
from harness.remoting.client import RemotingConnection
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.commands import kv_table
from harness.remoting.frame import RemotingCommand
from harness.status import cluster_info, registrations
from tests.helpers import broker_config, namesrv_config, start_node, wait_until
from tests.integration.dledger_group import LinkProxy

FAST: Timing = TIMING_PROFILES["fast"]
TOPIC = "RepTopic"


class ProxyMesh:
    """One LinkProxy per directed peer link, served by an event loop in a thread of the test process."""

    def __init__(self, raft_ports: dict[str, int]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.proxies = {(a, b): LinkProxy(raft_ports[b]) for a in raft_ports for b in raft_ports if a != b}
        self._call(self._start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()

    def port(self, src: str, dst: str) -> int:
        return self.proxies[(src, dst)].port

    def isolate(self, self_id: str) -> None:
        async def cut() -> None:
            for (a, b), proxy in self.proxies.items():
                if self_id in (a, b):
                    proxy.cut()
        self._call(cut())

    def heal(self) -> None:
        async def heal() -> None:
            for proxy in self.proxies.values():
                proxy.heal()
        self._call(heal())

    def close(self) -> None:
        async def stop() -> None:
            for proxy in self.proxies.values():
                await proxy.stop()
        self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class Group:
    """A NameServer and ``size`` broker replicas of broker-a; ``reaper`` is the node_reaper fixture list."""

    def __init__(self, tmp: Path, reaper: list[NodeProcess], size: int = 3, proxied: bool = False,
                 timing: Timing = FAST, queues: int = 4, **extra: Any) -> None:
        self.tmp, self.reaper, self.timing = tmp, reaper, timing
        self.ns = start_node(namesrv_config(tmp, timing=timing), tmp)
        reaper.append(self.ns)
        self.ns_addr = self.ns.config.listen_addr
        ids = [f"n{i}" for i in range(size)]
        raft_ports = {sid: free_port() for sid in ids}
        self.mesh = ProxyMesh(raft_ports) if proxied else None
        self.configs: list[BrokerConfig] = []
        for i, sid in enumerate(ids):
            peers = {other: f"127.0.0.1:{self._peer_port(sid, other, raft_ports)}" for other in ids}
            self.configs.append(broker_config(tmp, [self.ns_addr], node_id=f"broker-a-{i}", timing=timing,
                                              topics=(TopicSpec(TOPIC, queues, queues),), raft_self_id=sid,
                                              raft_peers=peers, raft_port=raft_ports[sid], **extra))
        self.procs: list[NodeProcess | None] = [None] * size

    def _peer_port(self, src: str, dst: str, raft_ports: dict[str, int]) -> int:
        if self.mesh is None or src == dst:
            return raft_ports[dst]
        return self.mesh.port(src, dst)

    # ------------------------------------------------------------ processes
    def start(self, *which: int) -> None:
        for i in which or range(len(self.configs)):
            self.procs[i] = start_node(self.configs[i], self.tmp)
            self.reaper.append(self.procs[i])  # type: ignore[arg-type]

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: not proc.is_alive(), timeout=10, message=f"replica {i} to die")
        self.procs[i] = None

    def stop(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        stop_node(proc, timeout=5)
        self.procs[i] = None

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()

    def addr(self, i: int) -> str:
        return self.configs[i].listen_addr

    # ------------------------------------------------------------ observation
    def runtime(self, i: int) -> dict[str, str]:
        """GET_BROKER_RUNTIME_INFO of replica ``i`` (raft* keys included)."""
        conn = RemotingConnection(self.addr(i), connect_timeout=2.0)
        try:
            resp = conn.invoke(RemotingCommand(code=RequestCode.GET_BROKER_RUNTIME_INFO), 3.0)
        finally:
            conn.close()
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        return kv_table(resp.body)

    def registered(self) -> dict[str, int]:
        """broker address -> brokerId, as the NameServer has them."""
        return registrations(cluster_info(self.ns_addr))

    def master(self) -> int | None:
        """Index of the replica registered as brokerId 0 that also reports itself raft leader."""
        regs = self.registered()
        for i, proc in enumerate(self.procs):
            if proc is not None and regs.get(self.addr(i)) == 0 and self.runtime(i).get("raftRole") == "leader":
                return i
        return None

    def wait_master(self, timeout: float = 15.0, not_in: tuple[int, ...] = ()) -> int:
        def found() -> int | None:
            i = self.master()
            return None if i is None or i in not_in else i + 1  # +1: index 0 must be truthy
        return int(wait_until(found, timeout=timeout, interval=0.05, message="a registered master")) - 1

    def live(self) -> list[int]:
        return [i for i, proc in enumerate(self.procs) if proc is not None]

    def wait_caught_up(self, timeout: float = 20.0) -> int:
        """Wait until every running replica has the same last index, all of it committed and applied."""
        def same() -> int | None:
            infos = [self.runtime(i) for i in self.live()]
            values = {(r["raftLastIndex"], r["raftCommitIndex"], r["raftAppliedIndex"]) for r in infos}
            if len(values) == 1:
                last, commit, applied = values.pop()
                return int(last) if last == commit == applied else None
            return None
        return int(wait_until(same, timeout=timeout, interval=0.05, message="every replica caught up"))
