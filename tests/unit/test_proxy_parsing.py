"""Pure pieces of the built-in proxy: JSON decoding, addresses, routing, HTTP heads, toxic specs, metrics."""
from __future__ import annotations

import asyncio
import json
import random

import pytest

from chaos.proxy.decode import MISSING, field, get_float32, get_int, parse_json
from chaos.proxy.errors import ApiError
from chaos.proxy.httpd import HttpError, parse_head
from chaos.proxy.listen import AddressError, normalize, split_host_port
from chaos.proxy.metrics import LiveProxy, MetricsRegistry
from chaos.proxy.router import Router
from chaos.proxy.stream import Direction
from chaos.proxy.toxic_spec import parse_new_toxic, parse_update
from chaos.proxy.toxics import lookup, type_names
from chaos.proxy.toxics.slicer import Slicer

pytestmark = pytest.mark.timeout(30)


def test_all_toxiproxy_toxic_types_are_registered() -> None:
    assert type_names() == ["bandwidth", "latency", "limit_data", "noop", "reset_peer", "slicer", "slow_close",
                            "timeout"]
    assert lookup("down") is None


def test_parse_json_reports_go_style_errors() -> None:
    with pytest.raises(ApiError, match="bad request body: EOF"):
        parse_json(b"  ")
    for body in (b"{", b"NaN", b"[" * 50_000, b"1" * 5000):
        with pytest.raises(ApiError) as caught:
            parse_json(body)
        assert caught.value.status == 400
    assert parse_json(b'{"name": "\xff"}') == {"name": "\ufffd"}  # invalid UTF-8 replaced, as Go


def test_fields_match_case_insensitively_and_null_means_absent() -> None:
    obj = {"Name": "a", "upstream": None, "name": "exact"}
    assert field(obj, "name") == "exact"
    assert field({"NAME": "b"}, "name") == "b"
    assert field(obj, "upstream") is MISSING


def test_integer_and_float_fields_are_typed_strictly() -> None:
    assert get_int({"latency": 5}, "latency", "T") == 5
    for bad in (1.5, True, "5", 2**63):
        with pytest.raises(ApiError, match="cannot unmarshal"):
            get_int({"latency": bad}, "latency", "T")
    assert get_float32({"toxicity": 1}, "toxicity", "T") == 1.0
    with pytest.raises(ApiError):
        get_float32({"toxicity": 1e39}, "toxicity", "T")


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:80", ("::1", 80)), (":80", ("", 80)), ("x:", ("x", 0)),
])
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize("address, message", [
    ("abc", "missing port"), ("a:b:c", "too many colons"), ("[::1]", "missing port"), ("[::1", "missing ']'"),
    ("h:99999", "invalid port"), ("h:http", "unknown port"),
])
def test_split_host_port_errors(address: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        split_host_port(address)


def test_normalize_resolves_names_and_empty_hosts_to_loopback() -> None:
    assert asyncio.run(normalize("localhost:8474")) == "127.0.0.1:8474"
    assert asyncio.run(normalize(":9")) == "127.0.0.1:9"
    assert asyncio.run(normalize("[::1]:9")) == "[::1]:9"


def test_router_matches_segments_and_tells_404_from_405() -> None:
    router = Router()

    async def handler(request: object, params: object) -> None:
        return None

    router.add("/proxies/{proxy}", ("GET",), handler)  # type: ignore[arg-type]
    router.add("/proxies/{proxy}", ("DELETE",), handler)  # type: ignore[arg-type]
    match = router.match("GET", "/proxies/a b")
    assert match is not None and match.params == {"proxy": "a b"} and match.handler is handler
    wrong = router.match("PUT", "/proxies/x")
    assert wrong is not None and wrong.handler is None and wrong.allowed == ("GET", "DELETE")
    for path in ("/proxies", "/proxies/", "/proxies//", "//proxies/x", "/proxies/x/y"):
        assert router.match("GET", path) is None, path


def test_parse_head() -> None:
    request = parse_head(b"GET /proxies/a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert request.method == "GET" and request.path == "/proxies/a b" and request.keep_alive
    assert request.headers == {"host": "h", "x-a": "1, 2"}
    assert parse_head(b"GET http://h:1/version HTTP/1.0\r\n\r\n").path == "/version"
    assert not parse_head(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive
    for bad in (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", b"GET  / HTTP/1.1\r\n\r\n", b"GET / HTTP/2\r\n\r\n"):
        with pytest.raises(HttpError):
            parse_head(bad)


def test_new_toxic_defaults_and_check_order() -> None:
    spec = parse_new_toxic(b'{"type": "latency", "stream": "UPSTREAM", "attributes": {"latency": 7}}', lambda n: False)
    assert (spec.name, spec.direction, spec.stream) == ("latency_UPSTREAM", Direction.UPSTREAM, "UPSTREAM")
    assert spec.toxicity == 1.0
    assert spec.to_json()["attributes"] == {"latency": 7, "jitter": 0}
    # A duplicate name is found before bad attributes are (Toxiproxy's order).
    with pytest.raises(ApiError) as caught:
        parse_new_toxic(b'{"type": "latency", "attributes": {"latency": "x"}}', lambda n: True)
    assert caught.value.status == 409


def test_toxic_update_is_partial_and_atomic() -> None:
    spec = parse_new_toxic(json.dumps({"type": "latency", "toxicity": 0.25,
                                       "attributes": {"latency": 100, "jitter": 10}}).encode(), lambda n: False)
    toxic, toxicity = parse_update(spec, b'{"attributes": {"jitter": 3}}')
    assert toxic.attributes() == {"latency": 100, "jitter": 3} and toxicity == 0.25
    with pytest.raises(ApiError):
        parse_update(spec, b'{"attributes": {"jitter": 3, "latency": "x"}}')
    assert spec.toxic.attributes() == {"latency": 100, "jitter": 10}


@pytest.mark.parametrize("size, average, variation", [(100, 10, 0), (100, 10, 5), (1, 1, 0), (5000, 1, 30),
                                                      (1000, 3, 50)])
def test_slicer_cuts_cover_the_chunk_exactly(size: int, average: int, variation: int) -> None:
    cuts = Slicer(average, variation, 0).cuts(size, random.Random(size))
    assert cuts[0][0] == 0 and cuts[-1][1] == size
    assert all(end > start for start, end in cuts)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False))
    if variation == 0:
        assert max(end - start for start, end in cuts) <= average + variation


def test_metrics_render_escapes_labels_and_keeps_deleted_series() -> None:
    registry = MetricsRegistry()
    counters = registry.counters('we"ird\\', "127.0.0.1:1", "up:2")
    counters.upstream.received = 5
    text = registry.render([LiveProxy(('we"ird\\', "127.0.0.1:1", "up:2"), 3)])
    assert ('toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:1",'
            'proxy="we\\"ird\\\\",upstream="up:2"} 5') in text
    assert 'rmqh_proxy_active_connections{listener="127.0.0.1:1",proxy="we\\"ird\\\\",upstream="up:2"} 3' in text
    assert registry.counters('we"ird\\', "127.0.0.1:1", "up:2") is counters
