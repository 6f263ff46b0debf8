"""toxiproxy-python 0.1.1 itself, and the typed wrapper chaos.toxiproxy, against the built-in server."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.proxy.testing import EchoServer, ServerThread, connect, recv_exact, wait_until
from chaos.toxiproxy import ProxySpec, ToxiproxyClient, ToxiproxyError
from harness.errors import HarnessError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(server: ServerThread) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient("127.0.0.1", server.port, timeout=5) as c:
        yield c


def round_trip(address: str) -> float:
    with connect(address) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exact(sock, 4) == b"ping"
        return time.monotonic() - start


def refused(address: str) -> bool:
    try:
        connect(address).close()
    except ConnectionRefusedError:
        return True
    return False


# -- the library on its own
def test_library_works_against_the_built_in_server(server: ServerThread, echo: EchoServer) -> None:
    server_api = toxiproxy.Toxiproxy()
    server_api.update_api_consumer("127.0.0.1", server.port)
    assert server_api.running() and b"2.12.0-rmqh" in server_api.version()
    proxy = server_api.create(upstream=echo.address, name="lib")
    assert proxy.listen.startswith("127.0.0.1:") and not proxy.listen.endswith(":0")
    with pytest.raises(ProxyExists):
        server_api.create(upstream=echo.address, name="lib")
    assert proxy.add_toxic(type="latency", attributes={"latency": 100}) is None
    assert round_trip(proxy.listen) >= 0.1
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="bogus")
    assert list(proxy.toxics()) == ["latency_downstream"]
    assert proxy.destroy_toxic("latency_downstream") is True
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")


def test_library_disable_enable_down_reset_populate(server: ServerThread, echo: EchoServer) -> None:
    server_api = toxiproxy.Toxiproxy()
    server_api.update_api_consumer("127.0.0.1", server.port)
    proxy = server_api.create(upstream=echo.address, name="lib")
    proxy.disable()
    assert refused(proxy.listen) and server_api.get_proxy("lib").enabled is False
    proxy.enable()
    assert round_trip(proxy.listen) >= 0
    with proxy.down():
        assert refused(proxy.listen)
    assert round_trip(proxy.listen) >= 0
    proxy.disable()
    assert server_api.reset() is True and server_api.get_proxy("lib").enabled is True
    spec = {"name": "pop", "upstream": echo.address, "listen": "127.0.0.1:0"}
    created = server_api.populate([spec])
    exact = dict(spec, listen=created[0].listen)
    assert server_api.populate([exact]) == []  # idempotent only with the resolved address
    server_api.destroy_all()
    assert server_api.proxies() == {}


# -- the wrapper
def test_wrapper_round_trip(client: ToxiproxyClient, echo: EchoServer) -> None:
    assert client.version() == "2.12.0-rmqh"
    proxy = client.create_proxy("p", echo.address)
    assert client.proxies() == {"p": proxy} and client.proxy("p") == proxy
    toxic = client.add_toxic("p", "latency", "upstream", {"latency": 50}, toxicity=1.0)
    assert toxic.name == "latency_upstream"
    assert round_trip(proxy.listen) >= 0.05
    updated = client.update_toxic("p", toxic.name, {"jitter": 5})
    assert dict(updated.attributes) == {"latency": 50, "jitter": 5} and updated.toxicity == 1.0
    assert [t.name for t in client.toxics("p")] == ["latency_upstream"]
    client.remove_toxic("p", toxic.name)
    assert client.toxics("p") == []
    client.add_toxic("p", "timeout", attributes={"timeout": 0}, name="hole")
    client.reset()
    assert client.toxics("p") == []
    client.delete_proxy("p")
    assert client.proxies() == {}


def test_wrapper_errors_carry_status_message_and_names(client: ToxiproxyClient, echo: EchoServer) -> None:
    client.create_proxy("p", echo.address)
    cases = [
        (lambda: client.create_proxy("p", echo.address), 409, "p", None),
        (lambda: client.proxy("nope"), 404, "nope", None),
        (lambda: client.delete_proxy("nope"), 404, "nope", None),
        (lambda: client.add_toxic("p", "bogus"), 400, "p", "bogus_downstream"),
        (lambda: client.add_toxic("p", "slicer"), 400, "p", "slicer_downstream"),
        (lambda: client.add_toxic("nope", "latency"), 404, "nope", "latency_downstream"),
        (lambda: client.remove_toxic("p", "nope"), 404, "p", "nope"),
        (lambda: client.update_toxic("p", "nope", {"latency": 1}), 404, "p", "nope"),
        (lambda: client.enable("nope"), 404, "nope", None),
    ]
    for action, status, proxy, toxic in cases:
        with pytest.raises(ToxiproxyError) as caught:
            action()
        error = caught.value
        assert isinstance(error, HarnessError)
        assert (error.status, error.proxy, error.toxic) == (status, proxy, toxic), error
        assert error.message and repr(error.message) != "b''"
    with pytest.raises(ToxiproxyError, match="invalid toxic type"):
        client.add_toxic("p", "bogus")


def test_listen_failures_come_back_as_500_with_the_servers_message(client: ToxiproxyClient, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ToxiproxyError) as caught:  # the library itself says KeyError here
            client.create_proxy("p", echo.address, listen=busy)
        assert caught.value.status == 500 and "address already in use" in caught.value.message
        client.create_proxy("q", echo.address, listen=busy.replace(busy.rsplit(":", 1)[1], "0"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        client.create_proxy("r", echo.address, listen=busy, enabled=False)
        with pytest.raises(ToxiproxyError) as caught:  # the library reports success here
            client.enable("r")
        assert caught.value.status == 500 and caught.value.proxy == "r"


def test_wrapper_disable_enable_and_down(client: ToxiproxyClient, echo: EchoServer) -> None:
    proxy = client.create_proxy("p", echo.address)
    client.disable("p")
    assert refused(proxy.listen) and client.proxy("p").enabled is False
    client.enable("p")
    assert round_trip(proxy.listen) >= 0
    with client.down("p"):
        assert refused(proxy.listen)
    assert client.proxy("p").enabled is True


def test_populate_is_idempotent_and_keeps_toxics(client: ToxiproxyClient, echo: EchoServer) -> None:
    first = client.populate([ProxySpec("a", echo.address), {"name": "b", "upstream": echo.address}])
    assert [p.name for p in first] == ["a", "b"]
    client.add_toxic("a", "latency", attributes={"latency": 10})
    again = client.populate([ProxySpec("a", echo.address), ProxySpec("b", echo.address)])
    assert again == first and [t.name for t in client.toxics("a")] == ["latency_downstream"]
    with EchoServer() as other:
        moved = client.populate([ProxySpec("a", other.address)])
    assert moved[0].upstream != first[0].upstream and client.toxics("a") == []
    with pytest.raises(ToxiproxyError) as caught:
        client.populate([{"name": "c", "upstream": ""}])
    assert caught.value.status == 400


def test_stats_metrics_and_connections(client: ToxiproxyClient, echo: EchoServer) -> None:
    proxy = client.create_proxy("p", echo.address)
    with connect(proxy.listen) as sock:
        sock.sendall(b"x" * 100)
        recv_exact(sock, 100)
        stats = client.stats("p")
        assert (stats.upstream.received, stats.downstream.sent, stats.active_connections) == (100, 100, 1)
        metrics = client.metrics()["p"]
        assert (metrics.upstream.sent, metrics.downstream.received) == (100, 100)
        [conn] = client.connections("p")
        host, port = sock.getsockname()
        assert conn.client == f"{host}:{port}" and conn.upstream_local in echo.peers
    wait_until(lambda: client.stats("p").active_connections == 0, message="connection closed")


def test_unreachable_server_raises_without_status() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    client = ToxiproxyClient("127.0.0.1", port, timeout=2)
    for action in (client.version, client.proxies, client.reset, lambda: client.stats("p")):
        with pytest.raises(ToxiproxyError) as caught:
            action()
        assert caught.value.status is None


def test_a_stalled_server_times_out_and_does_not_block_other_servers(client: ToxiproxyClient) -> None:
    stalled = socket.create_server(("127.0.0.1", 0))  # accepts (in the backlog) and never answers
    try:
        slow = ToxiproxyClient("127.0.0.1", stalled.getsockname()[1], timeout=0.5)
        for action in (slow.version, slow.proxies, lambda: slow.update_toxic("p", "t", {"latency": 1})):
            start = time.monotonic()
            with pytest.raises(ToxiproxyError, match="no answer"):
                action()
            assert time.monotonic() - start < 5
    finally:
        stalled.close()  # resets the backlog: the abandoned library calls finish
    assert client.version() == "2.12.0-rmqh"
    for thread in threading.enumerate():
        if thread.name.startswith("toxiproxy "):  # the wrapper's call threads
            thread.join(5)
            assert not thread.is_alive(), thread.name


def test_names_with_spaces_work_everywhere(client: ToxiproxyClient, echo: EchoServer) -> None:
    proxy = client.create_proxy("odd name", echo.address)
    client.add_toxic("odd name", "latency", name="slow toxic")
    assert client.update_toxic("odd name", "slow toxic", {"latency": 5}).attributes["latency"] == 5
    client.disable("odd name")
    client.enable("odd name")
    assert round_trip(proxy.listen) >= 0.005
    assert client.stats("odd name").upstream.received == 4
    client.delete_proxy("odd name")
