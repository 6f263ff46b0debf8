"""Broker throughput with a minimal client: pre-encoded frames over one raw socket, from this process.

    .venv/bin/python benchmarks/bench_broker_raw.py [--messages 200000] [--window 256] [--chunk 1] [--size 1024]

Starts one broker process (no NameServer), then (a) pipelined SEND_MESSAGE_V2 of ``size``-byte bodies over
4 queues, ``chunk`` frames per socket write, at most ``window`` unanswered, and (b) pipelined pulls of 32
messages draining everything. The client does almost no work per message (frames are encoded up front and
responses only counted), so the figures approach the broker's own ceiling. Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cluster.local.config import BrokerConfig, TopicSpec  # noqa: E402
from cluster.local.process import free_port, spawn_node, stop_node  # noqa: E402
from harness.remoting.frame import RemotingCommand, decode_command, encode_command  # noqa: E402

TOPIC = "Bench"
QUEUES = 4


def send_frames(count: int, size: int) -> list[bytes]:
    body = b"x" * size
    now = str(int(time.time() * 1000))
    return [encode_command(RemotingCommand(code=310, opaque=i, body=body, ext_fields={
        "a": "pg", "b": TOPIC, "c": "TBW102", "d": "4", "e": str(i % QUEUES), "f": "0", "g": now, "h": "0",
        "i": f"UNIQ_KEY\x01{i:032X}\x02WAIT\x01true", "j": "0", "k": "false"})) for i in range(count)]


def pull_frames(per_queue: int) -> list[bytes]:
    return [encode_command(RemotingCommand(code=11, opaque=q * per_queue + off, ext_fields={
        "consumerGroup": "bench", "topic": TOPIC, "queueId": str(q), "queueOffset": str(off), "maxMsgNums": "32",
        "sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0"}))
        for q in range(QUEUES) for off in range(0, per_queue, 32)]


def pipeline(addr: str, frames: list[bytes], window: int, chunk: int) -> tuple[float, int, int]:
    """Send every frame keeping at most ``window`` unanswered; (seconds, response bytes, error responses)."""
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    credit = threading.Semaphore(window)
    totals = [0, 0]

    def read() -> None:
        buf, seen = bytearray(), 0
        while seen < len(frames):
            data = sock.recv(1 << 22)
            if not data:
                return
            buf += data
            pos = 0
            while len(buf) - pos >= 4 and len(buf) - pos >= 4 + (length := struct.unpack_from(">i", buf, pos)[0]):
                if seen % 101 == 0 and decode_command(bytes(buf[pos + 4:pos + 4 + length])).code != 0:
                    totals[1] += 1
                totals[0] += length
                pos += 4 + length
                seen += 1
                credit.release()
            del buf[:pos]

    reader = threading.Thread(target=read)
    reader.start()
    started = time.perf_counter()
    for i in range(0, len(frames), chunk):
        part = frames[i:i + chunk]
        for _ in part:
            credit.acquire()
        sock.sendall(b"".join(part))
    reader.join()
    sock.close()
    return time.perf_counter() - started, totals[0], totals[1]


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    config = BrokerConfig(node_id="broker-a-0", host="127.0.0.1", port=free_port(), data_dir=str(tmp / "b"),
                          log_file=str(tmp / "b.log"), parent_pid=psutil.Process().pid,
                          topics=(TopicSpec(TOPIC, QUEUES, QUEUES),))
    node = spawn_node(config, tmp / "b.json")
    broker = psutil.Process(node.pid)
    try:
        per_queue = args.messages // QUEUES // 32 * 32
        for name, frames, msgs_per_frame in (("send", send_frames(args.messages, args.size), 1),
                                             ("pull", pull_frames(per_queue), 32)):
            before = cpu(broker)
            seconds, received, errors = pipeline(config.listen_addr, frames, args.window, args.chunk)
            msgs = len(frames) * msgs_per_frame
            load = 100 * (cpu(broker) - before) / seconds
            print(f"{name}: {msgs} msgs in {seconds:.2f} s = {msgs / seconds:,.0f} msgs/s, "
                  f"{received / seconds / 1e6:.1f} MB/s received, broker CPU {load:.0f}%, {errors} sampled errors")
    finally:
        stop_node(node)


if __name__ == "__main__":
    main()
