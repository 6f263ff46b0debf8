"""Raft group throughput and leader failover time: three replicas, each its own process, fast timing.

    .venv/bin/python benchmarks/bench_raft.py [--seconds 10] [--concurrency 512] [--size 1024] [--kills 10]

Throughput: the leader's own process keeps ``concurrency`` appends of one ``size``-byte payload outstanding
and counts those a majority acknowledged. Failover: SIGKILL the leader, time until the new leader's first
committed append (and until it announced itself), restart the killed replica from its directories, repeat.
Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cluster.local.process import free_port  # noqa: E402

Event = dict[str, Any]


class Replica:
    """One replica process and the reader thread that forwards its stdout events to the group queue."""

    def __init__(self, node_id: str, peers: str, directory: Path, events: queue.Queue[tuple[str, Event]]) -> None:
        self.node_id, self.peers, self.directory, self.events = node_id, peers, directory, events
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cluster.local.dledger_bench_node", "--id", self.node_id, "--peers", self.peers,
             "--dir", str(self.directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.events.put((self.node_id, json.loads(line)))

    def send(self, cmd: Event) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class Group:
    def __init__(self, root: Path) -> None:
        self.events: queue.Queue[tuple[str, Event]] = queue.Queue()
        ids = ["n0", "n1", "n2"]
        peers = ",".join(f"{i}=127.0.0.1:{free_port()}" for i in ids)
        self.replicas = {i: Replica(i, peers, root / i, self.events) for i in ids}
        self.roles: dict[str, Event] = {}

    def wait_for(self, match: Any, timeout: float) -> tuple[str, Event]:
        """Consume events until ``match(node_id, event)``; role events are tracked on the way."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                node_id, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no matching event within {timeout}s; roles {self.roles}") from None
            if event["event"] == "role":
                self.roles[node_id] = event
            if match(node_id, event):
                return node_id, event

    def leader(self) -> str | None:
        leaders = [n for n, e in self.roles.items() if e["role"] == "leader"]
        return max(leaders, key=lambda n: self.roles[n]["term"]) if leaders else None


def throughput(group: Group, leader: str, seconds: float, concurrency: int, size: int) -> None:
    procs = [psutil.Process(r.proc.pid) for r in group.replicas.values() if r.proc]  # type: ignore[union-attr]
    for proc in procs:
        proc.cpu_percent()
    group.replicas[leader].send({"cmd": "load", "seconds": seconds, "concurrency": concurrency, "size": size})
    _, result = group.wait_for(lambda n, e: e["event"] == "load_result", seconds + 30)
    cpu = ", ".join(f"{p.pid}:{p.cpu_percent():.0f}%" for p in procs)
    if "error" in result:
        print(f"throughput: load failed: {result['error']}")
        return
    rate = result["committed"] / result["elapsed"]
    print(f"throughput: {result['committed']} committed in {result['elapsed']:.1f}s = {rate:,.0f} entries/s "
          f"({rate * size / 1e6:.1f} MB/s), errors {result['errors']}, concurrency {concurrency}, "
          f"payload {size} B; CPU per replica {cpu}")
    for node_id, replica in group.replicas.items():
        replica.send({"cmd": "status"})
        _, status = group.wait_for(lambda n, e, node_id=node_id: n == node_id and e["event"] == "status", 10)
        print(f"  {node_id}: {status['role']} term {status['term']} last index {status['lastIndex']} "
              f"commit index {status['commitIndex']}")


def one_failover(group: Group) -> tuple[float, float]:
    old = group.leader()
    assert old is not None
    old_term = group.roles[old]["term"]
    killed_at = time.monotonic()
    group.replicas[old].kill()
    group.roles.pop(old)
    new, elected = group.wait_for(lambda n, e: e["event"] == "role" and e["role"] == "leader"
                                  and e["term"] > old_term, 30)
    _, committed = group.wait_for(lambda n, e: n == new and e["event"] == "first_commit", 30)
    group.replicas[old].start()
    group.wait_for(lambda n, e: n == old and e["event"] == "role" and e.get("leader") == new, 30)
    return elected["t"] - killed_at, committed["t"] - killed_at


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"{name}: n={len(values)} min {ordered[0]:.3f}s median {statistics.median(ordered):.3f}s "
            f"p90 {p90:.3f}s max {ordered[-1]:.3f}s mean {statistics.mean(ordered):.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--keep", metavar="DIR", help="keep the replicas' data and logs in DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        group = Group(Path(args.keep or tmp))
        try:
            for replica in group.replicas.values():
                replica.start()
            leader, _ = group.wait_for(lambda n, e: e["event"] == "first_commit", 30)
            print(f"leader {leader} elected (fast profile: heartbeat 0.2 s, leader lost after 0.6 s)")
            throughput(group, leader, args.seconds, args.concurrency, args.size)
            elected, committed = [], []
            for _ in range(args.kills):
                e, c = one_failover(group)
                elected.append(e)
                committed.append(c)
            if args.kills:
                print(summary("failover: kill -> new leader announced", elected))
                print(summary("failover: kill -> first committed append", committed))
        finally:
            for replica in group.replicas.values():
                replica.stop()


if __name__ == "__main__":
    main()
