"""Replicated broker group: throughput with majority acknowledgement, and failover time.

    .venv/bin/python benchmarks/bench_group.py [--seconds 10] [--window 512] [--size 1024]
                                               [--kills-fast 12] [--kills-default 3] [--skip-throughput]

(a) One NameServer and one broker group, 3 replicas (every send answered after a majority holds it) and,
for comparison, 1 replica. This process is the client: MQClient pipelined async sends keeping ``window``
in flight, ``size``-byte bodies. Prints acknowledged msgs/s and each process's CPU per 10k messages. All
processes share the machine's cores.

(b) Failover: a 3-replica group; a client thread sends continuously (sync, 1 s timeout, 5 ms pause after a
failure). Each round SIGKILLs the master and times kill -> first SEND_OK answered by the new master, then
restarts the killed replica and waits until it caught up. Both timing profiles (default: DLedger's 2 s
heartbeat x 3; fast: /10). Prints the distribution. Asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cluster.local.config import TIMING_PROFILES, BrokerConfig, NamesrvConfig, Timing, TopicSpec  # noqa: E402
from cluster.local.process import NodeProcess, free_port, spawn_node, stop_node  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.remoting.mq import Message, MQClient  # noqa: E402
from harness.status import cluster_info, registrations, runtime_info  # noqa: E402

TOPIC = "BenchGroup"


class Cluster:
    """One NameServer and one group of ``replicas`` broker processes under ``tmp``."""

    def __init__(self, tmp: Path, replicas: int, timing: Timing, queues: int = 8) -> None:
        self.tmp, self.timing = tmp, timing
        common = {"host": "127.0.0.1", "timing": timing, "parent_pid": os.getpid()}
        ns_cfg = NamesrvConfig(node_id="ns-0", port=free_port(), data_dir=str(tmp / "ns-0"),
                               log_file=str(tmp / "logs/ns-0.log"), **common)  # type: ignore[arg-type]
        self.ns = spawn_node(ns_cfg, tmp / "configs/ns-0.json")
        ids = [f"n{i}" for i in range(replicas)]
        raft_ports = {sid: free_port() for sid in ids}
        peers = {sid: f"127.0.0.1:{port}" for sid, port in raft_ports.items()} if replicas > 1 else {}
        self.configs = [BrokerConfig(
            node_id=f"broker-a-{i}", port=free_port(), data_dir=str(tmp / f"broker-a-{i}"),
            log_file=str(tmp / f"logs/broker-a-{i}.log"), broker_name="broker-a",
            namesrv_addrs=(ns_cfg.listen_addr,), topics=(TopicSpec(TOPIC, queues, queues),),
            raft_self_id=sid if peers else "", raft_peers=peers, raft_port=raft_ports[sid] if peers else 0,
            **common) for i, sid in enumerate(ids)]  # type: ignore[arg-type]
        self.procs: list[NodeProcess | None] = [self._spawn(i) for i in range(replicas)]

    def _spawn(self, i: int) -> NodeProcess:
        return spawn_node(self.configs[i], self.tmp / f"configs/broker-a-{i}.json")

    @property
    def ns_addr(self) -> str:
        return self.ns.config.listen_addr

    def master(self) -> int | None:
        regs = registrations(cluster_info(self.ns_addr))
        found = [i for i, cfg in enumerate(self.configs) if regs.get(cfg.listen_addr) == 0 and self.procs[i]]
        return found[0] if found else None

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value is not None and value is not False:
                    return value
            except HarnessError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"timed out after {timeout}s waiting for {what}")

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        psutil.Process(proc.pid).wait(10)
        self.procs[i] = None

    def restart(self, i: int) -> None:
        self.procs[i] = self._spawn(i)

    def caught_up(self, master: int) -> bool:
        """Every replica applied what the master had committed a moment before (sends keep going)."""
        target = int(runtime_info(self.configs[master].listen_addr)["raftCommitIndex"])
        return all(int(runtime_info(self.configs[i].listen_addr)["raftAppliedIndex"]) >= target
                   for i, p in enumerate(self.procs) if p is not None)

    def stop(self) -> None:
        for proc in [*self.procs, self.ns]:
            if proc is not None:
                stop_node(proc, timeout=10)


def cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# ---------------------------------------------------------------- (a) throughput
def pipelined(client: MQClient, seconds: float, window: int, body: bytes) -> tuple[int, int]:
    """Keep ``window`` async sends in flight for ``seconds``; (acknowledged, failed)."""
    slots = threading.Semaphore(window)
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def on_done(fut: Future) -> None:  # type: ignore[type-arg]
        with lock:
            ok = fut.exception() is None and fut.result().status == "SEND_OK"
            counts["ok" if ok else "failed"] += 1
        slots.release()

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        slots.acquire()
        client.send_async(Message(TOPIC, body)).add_done_callback(on_done)
    for _ in range(window):  # wait for the tail
        slots.acquire(timeout=10)
    return counts["ok"], counts["failed"]


def throughput(replicas: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmp:
        cluster = Cluster(Path(tmp), replicas, TIMING_PROFILES["fast"])
        try:
            cluster.wait(cluster.master, 15, "a master")
            with MQClient([cluster.ns_addr]) as client:
                cluster.wait(lambda: client.send(Message(TOPIC, b"warm-up")), 10, "a first send")
                pipelined(client, 1.0, args.window, b"x" * args.size)  # warm-up
                pids = {"client": os.getpid(), **{c.node_id: p.pid for c, p in zip(cluster.configs, cluster.procs) if p}}
                before = {name: cpu(pid) for name, pid in pids.items()}
                start = time.perf_counter()
                ok, failed = pipelined(client, args.seconds, args.window, b"x" * args.size)
                elapsed = time.perf_counter() - start
                per10k = 10_000 / max(ok, 1)
                usage = "  ".join(f"{name} {(cpu(pid) - before[name]) * per10k:.3f}" for name, pid in pids.items())
                print(f"(a) {replicas} replica{'s' if replicas > 1 else ''}: {ok:,} acknowledged in {elapsed:.1f} s = "
                      f"{ok / elapsed:,.0f} msgs/s ({failed} failed), window {args.window}, {args.size} B; "
                      f"CPU-s per 10k: {usage}", flush=True)
        finally:
            cluster.stop()


# ---------------------------------------------------------------- (b) failover
class Sender(threading.Thread):
    """Sends continuously and remembers the time and broker of every SEND_OK."""

    def __init__(self, client: MQClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.acks: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                result = self.client.send(Message(TOPIC, b"f" * 128), timeout=1.0, retries=0)
                with self.lock:
                    self.acks.append((time.monotonic(), result.broker_addr))
            except HarnessError:
                self.stop.wait(0.005)


def failover(profile: str, kills: int) -> None:
    timing = TIMING_PROFILES[profile]
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        cluster = Cluster(Path(tmp), 3, timing, queues=4)
        client = MQClient([cluster.ns_addr], route_poll_interval=timing.route_poll_interval)
        sender = Sender(client)
        try:
            cluster.wait(cluster.master, 30, "a master")
            sender.start()
            for _ in range(kills):
                times.append(one_kill(cluster, sender, timing))
        finally:
            sender.stop.set()
            sender.join(5)
            client.close()
            cluster.stop()
    print(f"(b) failover, {profile} profile (heartbeat {timing.raft_heartbeat_interval:g} s x "
          f"{timing.raft_max_heartbeat_leak}): kill -> first SEND_OK on the new master over {len(times)} kills: "
          f"{summary(times)}", flush=True)


def one_kill(cluster: Cluster, sender: Sender, timing: Timing) -> float:
    def caught_up_master() -> int | None:
        master = cluster.master()
        return master if master is not None and cluster.caught_up(master) else None
    old = int(cluster.wait(caught_up_master, 60, "a caught-up group"))  # type: ignore[arg-type]
    old_addr = cluster.configs[old].listen_addr
    cluster.wait(lambda: sender.acks and sender.acks[-1][0] > time.monotonic() - 0.5 and
                 sender.acks[-1][1] == old_addr, 30, "sends to the master")
    killed_at = time.monotonic()
    cluster.kill(old)
    limit = 20 * timing.raft_heartbeat_interval * timing.raft_max_heartbeat_leak + 10

    def first_new_ack() -> float | None:
        with sender.lock:
            return next((t for t, addr in sender.acks[-1000:] if t > killed_at and addr != old_addr), None)
    acked_at = float(cluster.wait(first_new_ack, limit, "a SEND_OK from a new master"))  # type: ignore[arg-type]
    cluster.restart(old)
    return acked_at - killed_at


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return (f"min {ordered[0]:.3f}s median {statistics.median(ordered):.3f}s p90 {p90:.3f}s "
            f"max {ordered[-1]:.3f}s mean {statistics.fmean(ordered):.3f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each throughput run")
    parser.add_argument("--window", type=int, default=512, help="async sends in flight")
    parser.add_argument("--size", type=int, default=1024, help="body bytes")
    parser.add_argument("--kills-fast", type=int, default=12)
    parser.add_argument("--kills-default", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    print(f"{psutil.cpu_count()} cores; every process of the group and this client share them", flush=True)
    if not args.skip_throughput:
        throughput(3, args)
        throughput(1, args)
    if args.kills_fast:
        failover("fast", args.kills_fast)
    if args.kills_default:
        failover("default", args.kills_default)


if __name__ == "__main__":
    main()
