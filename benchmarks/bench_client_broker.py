"""Client and broker throughput: one NameServer and one broker process, ``size``-byte messages.

    .venv/bin/python benchmarks/bench_client_broker.py [--sync 5000] [--messages 50000] [--window 256]
                                                       [--size 1024] [--queues 8] [--gevent]

(a) sync sends from one thread, (b) pipelined async sends keeping ``window`` in flight on one connection,
(c) pulls draining everything sent, one pull in flight per queue. For each phase: acknowledged msgs/s and
CPU-seconds per 10k messages of this (client) process and of the broker process, from psutil cpu_times
deltas. ``--gevent`` runs the client monkey-patched, as inside Locust. Prints figures, asserts nothing.
"""
from __future__ import annotations

import sys

if "--gevent" in sys.argv:  # before anything imports socket or threading
    from gevent import monkey

    monkey.patch_all()

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cluster.local.config import TIMING_PROFILES, BrokerConfig, NamesrvConfig, TopicSpec  # noqa: E402
from cluster.local.process import NodeProcess, free_port, spawn_node, stop_node  # noqa: E402
from harness.remoting.mq import Message, MessageQueue, MQClient, PullResult  # noqa: E402

TOPIC = "Bench"


def start_cluster(tmp: Path, queues: int) -> tuple[NodeProcess, NodeProcess]:
    timing = TIMING_PROFILES["fast"]
    common = {"host": "127.0.0.1", "timing": timing, "parent_pid": psutil.Process().pid}
    ns_cfg = NamesrvConfig(node_id="ns-0", port=free_port(), data_dir=str(tmp / "ns-0"),
                           log_file=str(tmp / "logs/ns-0.log"), **common)  # type: ignore[arg-type]
    ns = spawn_node(ns_cfg, tmp / "configs/ns-0.json")
    broker_cfg = BrokerConfig(node_id="broker-a-0", port=free_port(), data_dir=str(tmp / "broker-a-0"),
                              log_file=str(tmp / "logs/broker-a-0.log"), broker_name="broker-a",
                              namesrv_addrs=(ns_cfg.listen_addr,), topics=(TopicSpec(TOPIC, queues, queues),),
                              **common)  # type: ignore[arg-type]
    return ns, spawn_node(broker_cfg, tmp / "configs/broker-a-0.json")


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def measure(name: str, broker: psutil.Process, run: Callable[[], int]) -> None:
    me = psutil.Process()
    c0, b0, t0 = cpu(me), cpu(broker), time.perf_counter()
    count = run()
    elapsed = time.perf_counter() - t0
    client_cpu, broker_cpu = cpu(me) - c0, cpu(broker) - b0
    per10k = 10_000 / max(count, 1)
    print(f"{name:<28} {count:>8} msgs {elapsed:7.2f} s {count / elapsed:>10.0f} msgs/s   "
          f"CPU-s per 10k: client {client_cpu * per10k:6.3f}  broker {broker_cpu * per10k:6.3f}", flush=True)


def sync_sends(client: MQClient, n: int, body: bytes) -> int:
    ok = 0
    for _ in range(n):
        ok += client.send(Message(TOPIC, body)).status == "SEND_OK"
    return ok


def async_sends(client: MQClient, n: int, window: int, body: bytes) -> int:
    slots = threading.Semaphore(window)
    finished = threading.Event()
    counts = {"ok": 0, "done": 0}
    lock = threading.Lock()

    def on_done(fut: Future) -> None:
        with lock:
            counts["done"] += 1
            counts["ok"] += fut.exception() is None and fut.result().status == "SEND_OK"
            if counts["done"] == n:
                finished.set()
        slots.release()

    for _ in range(n):
        slots.acquire()
        client.send_async(Message(TOPIC, body)).add_done_callback(on_done)
    finished.wait(120)
    return counts["ok"]


def drain(client: MQClient, queues: list[MessageQueue], batch: int) -> int:
    """One pull in flight per queue until every queue answers without messages."""
    offsets = {mq: 0 for mq in queues}
    total = 0
    pending: dict[MessageQueue, Future[PullResult]] = {
        mq: client.pull_async(mq, 0, group="bench", max_nums=batch) for mq in queues}
    while pending:
        for mq, fut in list(pending.items()):
            result = fut.result(30)
            del pending[mq]
            if result.status == "FOUND":
                total += len(result.messages)
                offsets[mq] = result.next_begin_offset
                pending[mq] = client.pull_async(mq, offsets[mq], group="bench", max_nums=batch)
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sync", type=int, default=5000, help="sync sends")
    parser.add_argument("--messages", type=int, default=50000, help="pipelined async sends")
    parser.add_argument("--window", type=int, default=256, help="async sends in flight")
    parser.add_argument("--size", type=int, default=1024, help="body bytes")
    parser.add_argument("--queues", type=int, default=8)
    parser.add_argument("--pull-batch", type=int, default=32)
    parser.add_argument("--gevent", action="store_true", help="monkey-patch the client process first")
    args = parser.parse_args(argv)
    body = b"x" * args.size
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        ns, broker = start_cluster(Path(tmp), args.queues)
        try:
            run_phases(args, body, ns, broker)
        finally:
            stop_node(broker, timeout=10)
            stop_node(ns, timeout=10)


def run_phases(args: argparse.Namespace, body: bytes, ns: NodeProcess, broker: NodeProcess) -> None:
    broker_proc = psutil.Process(broker.pid)
    with MQClient([ns.config.listen_addr]) as client:
        deadline = time.monotonic() + 15
        while True:
            try:
                queues = client.topic_route(TOPIC, refresh=True).subscribe_queues()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sync_sends(client, 200, body)  # warm-up: connections, route, broker code paths
        print(f"{args.size}-byte messages, {len(queues)} queues, async window {args.window}"
              + (", client under gevent" if args.gevent else ""))
        measure("(a) sync sends", broker_proc, lambda: sync_sends(client, args.sync, body))
        measure(f"(b) async sends (window {args.window})", broker_proc,
                lambda: async_sends(client, args.messages, args.window, body))
        measure(f"(c) pull drain (batch {args.pull_batch})", broker_proc,
                lambda: drain(client, queues, args.pull_batch))


if __name__ == "__main__":
    main()
