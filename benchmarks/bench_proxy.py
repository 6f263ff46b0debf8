"""Built-in Toxiproxy benchmark: latency the proxy adds and the throughput it carries, direct vs proxied.

Three processes on loopback: this client, the upstream servers (echo, sink, source; threads, blocking
sockets) and the proxy (``python -m chaos.proxy``, or ``toxiproxy-server`` with ``--server auto`` when one is on
PATH). Prints figures and asserts nothing.

    .venv/bin/python benchmarks/bench_proxy.py [--pings 20000] [--size 64] [--megabytes 1024] [--seconds 15]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from chaos.proxy.launcher import ToxiproxyProcess  # noqa: E402
from chaos.toxiproxy import ToxiproxyClient  # noqa: E402

_BLOCK = 1 << 20
_COUNT = struct.Struct("!Q")


# -- upstream servers (run in a child process: ``bench_proxy.py --serve PORTFILE``)
def serve(port_file: Path) -> None:
    handlers = {"echo": _echo, "sink": _sink, "source": _source}
    listeners = {name: socket.create_server(("127.0.0.1", 0)) for name in handlers}
    for name, listener in listeners.items():
        threading.Thread(target=_accept, args=(listener, handlers[name]), daemon=True).start()
    port_file.write_text(" ".join(f"{n}={s.getsockname()[1]}" for n, s in listeners.items()))
    sys.stdin.read()  # until the parent closes our stdin


def _accept(listener: socket.socket, handler: Any) -> None:
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_guarded, args=(handler, conn), daemon=True).start()


def _guarded(handler: Any, conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):  # OSError: the client stopped early
        handler(conn)


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def _sink(conn: socket.socket) -> None:
    buf, total = bytearray(_BLOCK), 0
    while n := conn.recv_into(buf):
        total += n
    conn.sendall(_COUNT.pack(total))


def _source(conn: socket.socket) -> None:
    (wanted,) = _COUNT.unpack(_recv_exact(conn, _COUNT.size))
    block, sent = memoryview(bytes(_BLOCK)), 0
    while sent < wanted:
        sent += conn.send(block[:min(_BLOCK, wanted - sent)])


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# -- measurements
def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ping_pong(port: int, pings: int, size: int) -> list[float]:
    payload, times = os.urandom(size), []
    with connect(port) as sock:
        for _ in range(pings + pings // 10):  # the first tenth warms up and is dropped
            start = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < size:
                got += len(sock.recv(size - got))
            times.append(time.perf_counter() - start)
    return times[pings // 10:]


def upstream_rate(port: int, total: int, seconds: float) -> float:
    """MB/s (10^6 bytes) from the client to the sink."""
    block, sent = memoryview(bytes(_BLOCK)), 0
    with connect(port) as sock:
        start = time.perf_counter()
        while sent < total and time.perf_counter() - start < seconds:
            sock.sendall(block)
            sent += _BLOCK
        sock.shutdown(socket.SHUT_WR)
        received: int = _COUNT.unpack(_recv_exact(sock, _COUNT.size))[0]
        return received / (time.perf_counter() - start) / 1e6


def downstream_rate(port: int, total: int, seconds: float) -> float:
    """MB/s from the source to the client."""
    buf, received = bytearray(_BLOCK), 0
    with connect(port) as sock:
        start = time.perf_counter()
        sock.sendall(_COUNT.pack(total))
        while received < total and time.perf_counter() - start < seconds:
            n = sock.recv_into(buf)
            if not n:
                break
            received += n
        return received / (time.perf_counter() - start) / 1e6


def percentiles(times: list[float]) -> tuple[float, float, float]:
    ordered = sorted(times)
    return (ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6,
            statistics.fmean(ordered) * 1e6)


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(Path(args.serve))
        return
    with Upstreams() as ports, ToxiproxyProcess(builtin=args.server == "builtin") as proxy_server:
        client = proxy_server.client()
        proxied = {name: _port(client.create_proxy(name, f"127.0.0.1:{port}").listen) for name, port in ports.items()}
        cpu = psutil.Process(proxy_server.pid)
        print(f"proxy benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"server {proxy_server.kind} {client.version()}")
        report_latency(args, ports["echo"], proxied["echo"])
        report_throughput(args, ports, proxied, client)
        times = cpu.cpu_times()
        print(f"proxy process CPU over the whole run: {times.user + times.system:.1f} s")


def report_latency(args: argparse.Namespace, direct: int, proxied: int) -> None:
    # Rounds alternate between the two paths so that load from other processes hits both alike.
    rounds: int = args.rounds
    samples: dict[str, list[float]] = {"direct": [], "through the proxy": []}
    round_p50: dict[str, list[float]] = {label: [] for label in samples}
    for _ in range(rounds):
        for label, port in (("direct", direct), ("through the proxy", proxied)):
            times = ping_pong(port, max(args.pings // rounds, 1), args.size)
            samples[label] += times
            round_p50[label].append(percentiles(times)[0])
    print(f"\nping-pong {args.size} B x {args.pings} ({rounds} rounds)      p50 us    p99 us   mean us"
          "   best-round p50 us")
    rows = {label: [*percentiles(times), min(round_p50[label])] for label, times in samples.items()}
    rows["added by the proxy"] = [p - d for p, d in zip(rows["through the proxy"], rows["direct"], strict=True)]
    for label, (p50, p99, mean, best) in rows.items():
        print(f"  {label:<36}{p50:8.1f}  {p99:8.1f}  {mean:8.1f}  {best:12.1f}")


def report_throughput(args: argparse.Namespace, ports: dict[str, int], proxied: dict[str, int],
                      client: ToxiproxyClient) -> None:
    total, seconds, runs = args.megabytes << 20, args.seconds, args.repeat
    print(f"\nthroughput, {args.megabytes} MiB or {seconds:g} s per run, best of {runs}    MB/s (10^6 B/s)")
    cases = [("upstream   direct", upstream_rate, ports["sink"]),
             ("upstream   through the proxy", upstream_rate, proxied["sink"]),
             ("downstream direct", downstream_rate, ports["source"]),
             ("downstream through the proxy", downstream_rate, proxied["source"])]
    for label, measure, port in cases:
        print(f"  {label:<46}{max(measure(port, total, seconds) for _ in range(runs)):8.0f}")
    client.add_toxic("sink", "noop", "upstream")  # any toxic moves the direction off the fast path
    best = max(upstream_rate(proxied["sink"], total, seconds) for _ in range(runs))
    print(f"  {'upstream   through the proxy, noop toxic':<46}{best:8.0f}")


class Upstreams:
    """The echo/sink/source servers in a child process."""

    def __enter__(self) -> dict[str, int]:
        import subprocess
        import tempfile
        self._tmp = tempfile.TemporaryDirectory()
        port_file = Path(self._tmp.name) / "ports"
        self._proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)], stdin=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("the upstream servers did not start")
            time.sleep(0.02)
        return {name: int(port) for name, port in (item.split("=") for item in port_file.read_text().split())}

    def __exit__(self, *exc_info: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)
        self._tmp.cleanup()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64, help="ping-pong message size in bytes")
    parser.add_argument("--megabytes", type=int, default=1024, help="MiB streamed per throughput run")
    parser.add_argument("--seconds", type=float, default=15.0, help="time limit per throughput run")
    parser.add_argument("--rounds", type=int, default=10, help="alternating ping-pong rounds")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per case (the best counts)")
    parser.add_argument("--server", choices=["builtin", "auto"], default="builtin",
                        help="auto: toxiproxy-server from PATH when there is one")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
