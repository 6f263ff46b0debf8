"""Connection lifecycle through the built-in proxy: disable, delete, restart, unreachable upstream, listing,
live byte counters, server stop."""
from __future__ import annotations

import select
import socket
from typing import Any

import pytest
import requests

from chaos.proxy.testing import EchoServer, ServerThread, connect, read_to_eof, recv_exact, wait_until

pytestmark = pytest.mark.timeout(60)


def call(server: ServerThread, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, server.url + path, json=body, timeout=5)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def make_proxy(server: ServerThread, upstream: str, name: str = "p") -> str:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream}
    return str(call(server, "POST", "/proxies", body)["listen"])


def echoes(sock: socket.socket) -> bool:
    sock.sendall(b"hi")
    return recv_exact(sock, 2) == b"hi"


def test_disable_closes_every_connection_and_refuses_new_ones(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    socks = [connect(listen) for _ in range(3)]
    assert all(echoes(sock) for sock in socks)
    call(server, "PATCH", "/proxies/p", {"enabled": False})
    for sock in socks:
        assert read_to_eof(sock) == b""
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(listen)
    call(server, "PATCH", "/proxies/p", {"enabled": True})
    with connect(listen) as sock:
        assert echoes(sock)


def test_delete_closes_every_connection(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with connect(listen) as sock:
        assert echoes(sock)
        call(server, "DELETE", "/proxies/p")
        assert read_to_eof(sock) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(listen)


def test_changing_the_upstream_restarts_the_proxy(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with EchoServer() as other, connect(listen) as sock:
        assert echoes(sock)
        call(server, "PATCH", "/proxies/p", {"upstream": other.address})
        assert read_to_eof(sock) == b""
        with connect(listen) as again:
            assert echoes(again)
        assert len(other.peers) == 1


def test_unreachable_upstream_accepts_then_closes_the_client(server: ServerThread) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    listen = make_proxy(server, dead)
    with connect(listen) as sock:
        assert read_to_eof(sock) == b""
    wait_until(lambda: call(server, "GET", "/proxies/p")["stats"]["active_connections"] == 0,
               message="connection forgotten")


def test_connections_lists_client_and_upstream_side_addresses(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with connect(listen) as a, connect(listen) as b:
        assert echoes(a) and echoes(b)
        listed = call(server, "GET", "/proxies/p/connections")
        clients = {f"{host}:{port}" for host, port in (a.getsockname(), b.getsockname())}
        assert {item["client"] for item in listed} == clients
        assert {item["upstream_local"] for item in listed} == set(echo.peers)
    wait_until(lambda: call(server, "GET", "/proxies/p/connections") == [], message="connections closed")


def test_byte_counters_move_while_the_connection_is_open(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with connect(listen) as sock:
        sock.sendall(b"x" * 1000)
        recv_exact(sock, 1000)
        stats = call(server, "GET", "/proxies/p")["stats"]
        assert stats["active_connections"] == 1 and stats["accepted_connections"] == 1
        assert stats["upstream"] == {"received_bytes": 1000, "sent_bytes": 1000}
        assert stats["downstream"] == {"received_bytes": 1000, "sent_bytes": 1000}
        metrics = requests.get(server.url + "/metrics", timeout=5).text
        assert f'toxiproxy_proxy_sent_bytes_total{{direction="downstream",listener="{listen}",proxy="p",' in metrics
        assert f'upstream="{echo.address}"}} 1000' in metrics


def test_counters_of_a_deleted_proxy_stay_in_metrics(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with connect(listen) as sock:
        echoes(sock)
    call(server, "DELETE", "/proxies/p")
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert f'toxiproxy_proxy_received_bytes_total{{direction="upstream",listener="{listen}",proxy="p"' in metrics


def test_half_close_is_passed_on(server: ServerThread, echo: EchoServer) -> None:
    listen = make_proxy(server, echo.address)
    with connect(listen) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b"last words"  # the reply still came back after our FIN


def test_stopping_the_server_closes_connections_and_listeners(echo: EchoServer) -> None:
    server = ServerThread().start()
    listen = make_proxy(server, echo.address)
    sock = connect(listen)
    try:
        assert echoes(sock)
        server.stop()
        assert read_to_eof(sock) == b""
        with pytest.raises(ConnectionRefusedError):
            connect(listen)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/version", timeout=5)
    finally:
        sock.close()
        server.stop()


@pytest.mark.parametrize("toxic", [None, {"type": "latency", "stream": "upstream", "attributes": {"latency": 60_000}}])
def test_a_peer_that_does_not_read_stops_the_proxy_reading(server: ServerThread, toxic: dict[str, Any] | None) -> None:
    """Back-pressure: bytes pile up in kernel buffers (bounded), not in the proxy's memory."""
    with socket.create_server(("127.0.0.1", 0)) as sink:
        make_proxy(server, f"127.0.0.1:{sink.getsockname()[1]}")
        if toxic:
            call(server, "POST", "/proxies/p/toxics", toxic)
        listen = call(server, "GET", "/proxies/p")["listen"]
        with connect(listen) as sock:
            held, _ = sink.accept()  # accepted, never read
            sent = push_until_blocked(sock, limit=256 << 20)
            held.close()
    assert sent < 64 << 20  # kernel buffers on each hop plus the proxy's small bounded buffers


def push_until_blocked(sock: socket.socket, limit: int) -> int:
    """Send until the socket stays unwritable for half a second (or ``limit`` bytes went out)."""
    sock.setblocking(False)
    block, sent = b"x" * 65536, 0
    while sent < limit:
        try:
            sent += sock.send(block)
        except BlockingIOError:
            if not select.select([], [sock], [], 0.5)[1]:
                break
    return sent


def test_an_upstream_that_speaks_first_is_relayed(server: ServerThread) -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        listen = make_proxy(server, f"127.0.0.1:{upstream.getsockname()[1]}")
        with connect(listen) as sock:
            greeter, _ = upstream.accept()
            with greeter:
                greeter.sendall(b"220 hello\r\n")  # before the client has said anything
                assert recv_exact(sock, 11) == b"220 hello\r\n"
