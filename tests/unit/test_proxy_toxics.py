"""What each toxic does to real traffic through the built-in proxy (loopback echo server).

Timing assertions are one-sided ("took at least the configured delay"); the only upper bounds are checks
against pile-up, with several seconds of slack.
"""
from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaos.proxy.testing import EchoServer, ServerThread, connect, nothing_arrives, read_to_eof, recv_exact

pytestmark = pytest.mark.timeout(60)


class Harness:
    """A server, an echo upstream and one proxy ``p`` in front of it."""

    def __init__(self, server: ServerThread, echo: EchoServer) -> None:
        self.server = server
        self.echo = echo
        self.listen = self.call("POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0",
                                                     "upstream": echo.address}).json()["listen"]

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = requests.request(method, self.server.url + path, json=body, timeout=5)
        assert response.status_code < 300, response.text
        return response

    def toxic(self, type_name: str, stream: str = "downstream", toxicity: float = 1.0, **attributes: int) -> str:
        body = {"type": type_name, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        return str(self.call("POST", "/proxies/p/toxics", body).json()["name"])

    def connect(self) -> socket.socket:
        return connect(self.listen)


@pytest.fixture
def h() -> Iterator[Harness]:
    with EchoServer() as echo, ServerThread(seed=7) as server:
        yield Harness(server, echo)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exact(sock, len(payload)) == payload
    return time.monotonic() - start


def test_data_passes_intact_both_ways(h: Harness) -> None:
    payload = os.urandom(1 << 20)
    with h.connect() as sock:
        sock.sendall(payload)
        assert recv_exact(sock, len(payload)) == payload


def test_latency_delays_each_direction_and_latencies_add_up(h: Harness) -> None:
    with h.connect() as sock:
        h.toxic("latency", latency=100)  # applies to the open connection too
        assert round_trip(sock) >= 0.1
        h.toxic("latency", "upstream", latency=50)
        assert round_trip(sock) >= 0.15


def test_latency_jitter_stays_above_latency_minus_jitter(h: Harness) -> None:
    h.toxic("latency", latency=100, jitter=50)
    with h.connect() as sock:
        assert min(round_trip(sock) for _ in range(8)) >= 0.05


def test_latency_counts_from_read_time_so_pipelined_chunks_do_not_pile_up(h: Harness) -> None:
    h.toxic("latency", latency=1000)
    with h.connect() as sock:
        start = time.monotonic()
        for i in range(5):
            sock.sendall(b"%d" % i)
            time.sleep(0.05)  # pacing, so the proxy reads five separate chunks
        assert recv_exact(sock, 5) == b"01234"
        elapsed = time.monotonic() - start
    assert elapsed >= 1.0
    assert elapsed < 4.0  # piled up, the fifth chunk would arrive after 5 s


def test_removing_latency_flushes_held_data_at_once(h: Harness) -> None:
    name = h.toxic("latency", latency=60_000)
    with h.connect() as sock:
        sock.sendall(b"held")
        assert nothing_arrives(sock, 0.2)
        h.call("DELETE", f"/proxies/p/toxics/{name}")
        assert recv_exact(sock, 4) == b"held"  # well before the minute is up


def test_latency_update_applies_to_open_connections(h: Harness) -> None:
    name = h.toxic("latency", latency=0)
    with h.connect() as sock:
        round_trip(sock)
        h.call("PATCH", f"/proxies/p/toxics/{name}", {"attributes": {"latency": 200}})
        assert round_trip(sock) >= 0.2


def test_bandwidth_limits_the_rate_in_kb_of_1000_bytes(h: Harness) -> None:
    h.toxic("bandwidth", rate=100)  # 100,000 bytes/s downstream
    payload = os.urandom(50_000)
    with h.connect() as sock:
        assert round_trip(sock, payload) >= 0.5 * 0.95


def test_slow_close_holds_back_the_end_of_stream(h: Harness) -> None:
    h.toxic("slow_close", delay=500)
    with h.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)  # the echo server answers, then closes when it sees EOF
        assert read_to_eof(sock) == b"bye"
        assert time.monotonic() - start >= 0.5


def test_timeout_drops_data_and_closes_after_the_timeout(h: Harness) -> None:
    h.toxic("timeout", timeout=300)
    with h.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"lost")
        assert read_to_eof(sock) == b""
        assert time.monotonic() - start >= 0.3 - 0.05  # the toxic starts when the proxy links the connection


def test_timeout_zero_is_a_silent_black_hole_and_removing_it_closes(h: Harness) -> None:
    name = h.toxic("timeout", "upstream", timeout=0)
    with h.connect() as sock:
        sock.sendall(b"lost")
        assert nothing_arrives(sock, 0.3)  # neither data nor EOF: the connection stays open
        h.call("DELETE", f"/proxies/p/toxics/{name}")
        assert read_to_eof(sock) == b""


def test_reset_peer_resets_connections_accepted_while_it_exists(h: Harness) -> None:
    h.toxic("reset_peer", timeout=300)
    with h.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"x")  # the echo answers; that first downstream chunk arms the reset
        with pytest.raises(ConnectionResetError):
            read_to_eof(sock)
        assert time.monotonic() - start >= 0.3


def test_reset_peer_added_to_an_open_connection_closes_it_with_fin(h: Harness) -> None:
    with h.connect() as sock:
        round_trip(sock)
        h.toxic("reset_peer", timeout=0)
        sock.sendall(b"x")
        assert read_to_eof(sock) == b""  # EOF, not ECONNRESET: SO_LINGER 0 is only set at accept


def test_slicer_cuts_data_into_delayed_pieces_without_losing_any(h: Harness) -> None:
    h.toxic("slicer", average_size=10, size_variation=0, delay=20_000)  # 100 B -> 16 pieces, 20 ms apart
    payload = os.urandom(100)
    with h.connect() as sock:
        assert round_trip(sock, payload) >= 15 * 0.02 * 0.9


def test_limit_data_cuts_after_n_bytes_and_closes(h: Harness) -> None:
    h.toxic("limit_data", bytes=25)
    with h.connect() as sock:
        received = b""
        for part in (b"a" * 10, b"b" * 10, b"c" * 10):
            sock.sendall(part)
            received += sock.recv(100)
        received += read_to_eof(sock)
    assert received == b"a" * 10 + b"b" * 10 + b"c" * 5


def test_limit_data_counts_across_updates(h: Harness) -> None:
    name = h.toxic("limit_data", bytes=10)
    with h.connect() as sock:
        assert round_trip(sock, b"123456") > 0
        h.call("PATCH", f"/proxies/p/toxics/{name}", {"attributes": {"bytes": 12}})
        sock.sendall(b"abcdef")
        assert read_to_eof(sock) == b"abcdef"  # 6 + 6 = 12 reached: cut and closed


def test_noop_changes_nothing(h: Harness) -> None:
    h.toxic("noop")
    h.toxic("noop", "upstream")
    with h.connect() as sock:
        payload = os.urandom(200_000)
        sock.sendall(payload)
        assert recv_exact(sock, len(payload)) == payload


def test_toxicity_is_drawn_per_connection(h: Harness) -> None:
    h.toxic("timeout", toxicity=0.5, timeout=0)
    socks = [h.connect() for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(b"?")
        answered: set[socket.socket] = set()
        deadline = time.monotonic() + 2.0  # the unaffected ones answer at once; the rest never do
        while time.monotonic() < deadline and len(answered) < len(socks):
            ready, _, _ = select.select([s for s in socks if s not in answered], [], [], 0.1)
            for sock in ready:
                assert sock.recv(1) == b"?"
                answered.add(sock)
        assert 0 < len(answered) < len(socks)
    finally:
        for sock in socks:
            sock.close()


def test_toxicity_zero_never_applies(h: Harness) -> None:
    h.toxic("timeout", toxicity=0.0, timeout=0)
    with h.connect() as sock:
        round_trip(sock)
