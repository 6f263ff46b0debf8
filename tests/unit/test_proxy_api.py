"""The built-in server's HTTP API against the Toxiproxy 2.x contract: routes, status codes, JSON shapes."""
from __future__ import annotations

import socket
from typing import Any

import pytest
import requests

from chaos.proxy.testing import EchoServer, ServerThread, connect

pytestmark = pytest.mark.timeout(60)


def call(server: ServerThread, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, json=body, timeout=5, **kwargs)


def create(server: ServerThread, name: str, upstream: str, **extra: Any) -> dict[str, Any]:
    response = call(server, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"  # as Toxiproxy (http.Error)
    assert response.json() == {"error": message, "status": status}


def test_version_is_json(server: ServerThread) -> None:
    response = call(server, "GET", "/version")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert response.json() == {"version": "2.12.0-rmqh"}
    assert response.headers["X-Toxiproxy-Request-Id"]


def test_proxy_index_is_a_map(server: ServerThread, echo: EchoServer) -> None:
    assert call(server, "GET", "/proxies").json() == {}
    created = create(server, "one", echo.address)
    assert call(server, "GET", "/proxies").json() == {"one": created}


def test_create_returns_201_and_the_resolved_listen_address(server: ServerThread, echo: EchoServer) -> None:
    proxy = create(server, "one", echo.address)
    host, port = proxy["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert proxy["upstream"] == echo.address and proxy["enabled"] is True
    assert proxy["toxics"] == [] and proxy["Logger"] == {}
    assert proxy["stats"]["active_connections"] == 0
    assert call(server, "GET", "/proxies/one").json() == proxy


def test_create_errors(server: ServerThread, echo: EchoServer) -> None:
    create(server, "one", echo.address)
    assert_error(call(server, "POST", "/proxies", {"name": "one", "upstream": echo.address}), 409,
                 "proxy already exists")
    assert_error(call(server, "POST", "/proxies", {"upstream": echo.address}), 400, "missing required field: name")
    assert_error(call(server, "POST", "/proxies", {"name": "x"}), 400, "missing required field: upstream")
    wrong = call(server, "POST", "/proxies", {"name": 5, "upstream": echo.address})
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("bad request body: json: cannot unmarshal")


def test_listen_failure_gives_500_and_the_proxy_is_not_stored(server: ServerThread, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        response = call(server, "POST", "/proxies", {"name": "p", "listen": address, "upstream": echo.address})
    assert_error(response, 500, f"listen tcp {address}: bind: address already in use")
    assert call(server, "GET", "/proxies/p").status_code == 404


def test_disabled_proxy_is_stored_but_does_not_listen(server: ServerThread, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    proxy = call(server, "POST", "/proxies", {"name": "p", "listen": address, "upstream": echo.address,
                                             "enabled": False}).json()
    assert proxy["enabled"] is False and proxy["listen"] == address
    with pytest.raises(ConnectionRefusedError):
        connect(address)


def test_missing_listen_binds_loopback_only(server: ServerThread, echo: EchoServer) -> None:
    proxy = call(server, "POST", "/proxies", {"name": "p", "upstream": echo.address}).json()
    assert proxy["listen"].startswith("127.0.0.1:")


def test_update_proxy_with_patch_or_post(server: ServerThread, echo: EchoServer) -> None:
    listen = create(server, "p", echo.address)["listen"]
    off = call(server, "PATCH", "/proxies/p", {"enabled": False, "name": "ignored"}).json()
    assert off["enabled"] is False and off["name"] == "p" and off["listen"] == listen
    with pytest.raises(ConnectionRefusedError):
        connect(listen)
    on = call(server, "POST", "/proxies/p", {"enabled": True}).json()  # deprecated form, still served
    assert on["enabled"] is True and on["listen"] == listen
    connect(listen).close()
    assert call(server, "PATCH", "/proxies/p", {"upstream": "127.0.0.1:1"}).json()["upstream"] == "127.0.0.1:1"
    assert_error(call(server, "PATCH", "/proxies/nope", {"enabled": True}), 404, "proxy not found")


def test_delete_proxy(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    response = call(server, "DELETE", "/proxies/p")
    assert response.status_code == 204 and response.content == b""
    assert_error(call(server, "DELETE", "/proxies/p"), 404, "proxy not found")
    assert_error(call(server, "GET", "/proxies/p"), 404, "proxy not found")


def test_unknown_path_and_wrong_method(server: ServerThread) -> None:
    missing = call(server, "GET", "/nope")
    assert missing.status_code == 404 and missing.text == "404 page not found\n"
    assert call(server, "GET", "/proxies/").status_code == 404  # no trailing-slash redirects, as mux
    for method, path in (("PUT", "/proxies"), ("DELETE", "/version"), ("GET", "/reset"), ("HEAD", "/populate")):
        response = call(server, method, path)
        assert response.status_code == 405 and response.content == b"", (method, path)


def test_browser_user_agents_are_refused(server: ServerThread) -> None:
    response = call(server, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert response.status_code == 403 and response.text == "User agent not allowed\n"


def test_toxic_defaults(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    response = call(server, "POST", "/proxies/p/toxics", {"type": "latency"})
    assert response.status_code == 200  # not 201, as Toxiproxy
    assert response.json() == {"attributes": {"latency": 0, "jitter": 0}, "name": "latency_downstream",
                               "type": "latency", "stream": "downstream", "toxicity": 1.0}
    mixed = call(server, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "UpStream"}).json()
    assert mixed["name"] == "latency_UpStream" and mixed["stream"] == "UpStream"


def test_toxic_errors(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    post = lambda body: call(server, "POST", "/proxies/p/toxics", body)  # noqa: E731
    assert_error(post({"type": "latency", "stream": "sideways"}), 400,
                 "stream was invalid, can be either upstream or downstream")
    assert_error(post({"type": "down"}), 400, "invalid toxic type")
    assert_error(post({"attributes": {"latency": 5}}), 400, "invalid toxic type")
    assert post({"name": "t", "type": "latency", "stream": "upstream"}).status_code == 200
    assert_error(post({"name": "t", "type": "timeout"}), 409, "toxic already exists")  # unique across streams
    for attributes in ({"latency": "100"}, {"latency": 1.5}, {"latency": True}, {"latency": 2**70}):
        assert post({"type": "latency", "attributes": attributes}).status_code == 400, attributes
    assert post({"type": "latency", "toxicity": "high"}).status_code == 400
    assert_error(call(server, "POST", "/proxies/nope/toxics", {"type": "latency"}), 404, "proxy not found")


def test_slicer_that_cannot_terminate_is_refused_and_the_server_lives(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    for attributes in ({}, {"average_size": 0}, {"average_size": -3}, {"average_size": 10, "size_variation": -1}):
        response = call(server, "POST", "/proxies/p/toxics", {"type": "slicer", "attributes": attributes})
        assert response.status_code == 400, attributes
    good = {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 2, "delay": 0}}
    assert call(server, "POST", "/proxies/p/toxics", good).status_code == 200
    zero = call(server, "PATCH", "/proxies/p/toxics/slicer_downstream", {"attributes": {"average_size": 0}})
    assert zero.status_code == 400
    assert call(server, "GET", "/proxies/p/toxics/slicer_downstream").json()["attributes"]["average_size"] == 10
    assert call(server, "GET", "/version").status_code == 200


def test_toxic_update_is_partial(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    call(server, "POST", "/proxies/p/toxics",
         {"name": "lag", "type": "latency", "toxicity": 0.5, "attributes": {"latency": 100, "jitter": 10}})
    updated = call(server, "PATCH", "/proxies/p/toxics/lag",
                   {"attributes": {"jitter": 5}, "type": "timeout", "stream": "upstream", "name": "x"}).json()
    assert updated == {"attributes": {"latency": 100, "jitter": 5}, "name": "lag", "type": "latency",
                       "stream": "downstream", "toxicity": 0.5}
    assert call(server, "POST", "/proxies/p/toxics/lag", {"toxicity": 1}).json()["toxicity"] == 1.0
    assert_error(call(server, "PATCH", "/proxies/p/toxics/nope", {}), 404, "toxic not found")


def test_toxic_list_show_delete(server: ServerThread, echo: EchoServer) -> None:
    create(server, "p", echo.address)
    for name, stream in (("d1", "downstream"), ("u1", "upstream"), ("d2", "downstream"), ("u2", "upstream")):
        call(server, "POST", "/proxies/p/toxics", {"name": name, "type": "noop", "stream": stream})
    names = [toxic["name"] for toxic in call(server, "GET", "/proxies/p/toxics").json()]
    assert names == ["u1", "u2", "d1", "d2"]  # upstream chain first, each in the order added
    assert call(server, "GET", "/proxies/p/toxics/u2").json()["stream"] == "upstream"
    assert call(server, "DELETE", "/proxies/p/toxics/u2").status_code == 204
    assert_error(call(server, "GET", "/proxies/p/toxics/u2"), 404, "toxic not found")
    assert_error(call(server, "DELETE", "/proxies/p/toxics/u2"), 404, "toxic not found")
    assert [t["name"] for t in call(server, "GET", "/proxies/p").json()["toxics"]] == ["u1", "d1", "d2"]


def test_reset_enables_proxies_and_removes_toxics(server: ServerThread, echo: EchoServer) -> None:
    create(server, "a", echo.address)
    create(server, "b", echo.address)
    call(server, "PATCH", "/proxies/a", {"enabled": False})
    call(server, "POST", "/proxies/b/toxics", {"type": "latency"})
    response = call(server, "POST", "/reset")
    assert response.status_code == 204
    proxies = call(server, "GET", "/proxies").json()
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values()) and set(proxies) == {"a", "b"}


def populate(server: ServerThread, body: Any) -> requests.Response:
    return call(server, "POST", "/populate", body)


def test_populate_creates_and_keeps_unchanged_proxies_with_their_toxics(server: ServerThread, echo: EchoServer) -> None:
    first = populate(server, [{"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address}])
    assert first.status_code == 201 and first.headers["Content-Type"] == "application/json"
    listen = first.json()["proxies"][0]["listen"]
    call(server, "POST", "/proxies/a/toxics", {"type": "latency"})
    port = listen.rsplit(":", 1)[1]
    again = populate(server, [{"name": "a", "listen": f"localhost:{port}", "upstream": echo.address,
                               "enabled": False}]).json()["proxies"][0]
    assert again["listen"] == listen and len(again["toxics"]) == 1 and again["enabled"] is True
    replaced = populate(server, [{"name": "a", "listen": listen, "upstream": "127.0.0.1:1"}]).json()["proxies"][0]
    assert replaced["toxics"] == [] and replaced["upstream"] == "127.0.0.1:1"


def test_populate_empty_and_invalid_bodies(server: ServerThread, echo: EchoServer) -> None:
    assert populate(server, []).json() == {"proxies": None}
    not_a_list = populate(server, {"name": "a"})
    assert not_a_list.status_code == 400 and not_a_list.json()["proxies"] is None
    assert not_a_list.headers["Content-Type"] == "application/json"
    missing = populate(server, [{"name": "a", "upstream": echo.address}, {"name": "b"}])
    assert missing.json() == {"error": "missing required field: upstream at proxy 2", "status": 400, "proxies": None}
    assert call(server, "GET", "/proxies").json() == {}  # checked before anything was created


def test_populate_stops_at_a_listen_failure_and_reports_what_was_done(server: ServerThread, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        response = populate(server, [{"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
                                     {"name": "b", "listen": busy, "upstream": echo.address},
                                     {"name": "c", "listen": "127.0.0.1:0", "upstream": echo.address}])
    assert response.status_code == 500
    body = response.json()
    assert "address already in use" in body["error"] and [p["name"] for p in body["proxies"]] == ["a"]
    assert set(call(server, "GET", "/proxies").json()) == {"a"}


def test_metrics_in_prometheus_text(server: ServerThread, echo: EchoServer) -> None:
    proxy = create(server, "p", echo.address)
    response = call(server, "GET", "/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    labels = f'listener="{proxy["listen"]}",proxy="p",upstream="{echo.address}"'
    for metric in ("received", "sent"):
        for direction in ("upstream", "downstream"):
            assert f'toxiproxy_proxy_{metric}_bytes_total{{direction="{direction}",{labels}}} 0' in response.text
    assert f"rmqh_proxy_active_connections{{{labels}}} 0" in response.text
