"""The API server under malformed, hostile and fuzzed input: every request gets an answer (or a closed
connection), never a crash, and the server keeps serving afterwards."""
from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaos.proxy.testing import EchoServer, ServerThread, connect, recv_exact

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer() as srv:
        yield srv


def exchange(server: ServerThread, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes; everything the server answers until it closes (or goes quiet)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close first on an oversized request
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


def assert_alive(server: ServerThread) -> None:
    assert requests.get(server.url + "/version", timeout=5).status_code == 200


@pytest.mark.parametrize("data, status", [
    (b"\x00\xff\xfe garbage \x01\x02\r\n\r\n", 400),
    (b"GET\r\n\r\n", 400),
    (b"GET /version HTTP/9.9\r\n\r\n", 505),
    (b"GET /version HTTPS/1.1\r\n\r\n", 400),
    (b"GET version HTTP/1.1\r\n\r\n", 400),
    (b"G\xc3\xa9T /version HTTP/1.1\r\n\r\n", 400),
    (b"GET /version HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /version HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    (b"POST /proxies HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /proxies HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /proxies HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"POST /proxies HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
    (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
    (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    (b"GET /version HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"\r\n\r\n", 400),
])
def test_malformed_requests_get_an_error_status(server: ServerThread, data: bytes, status: int) -> None:
    assert status_of(exchange(server, data)) == status
    assert_alive(server)


@pytest.mark.parametrize("data", [
    b"",
    b"GET /version HTTP/1.1\r\n",  # head never finished
    b"POST /proxies HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"name\"",  # body cut short
    bytes(range(256)) * 50,  # binary noise without a request end
])
def test_truncated_requests_just_close(server: ServerThread, data: bytes) -> None:
    answer = exchange(server, data)
    assert answer == b"" or status_of(answer) >= 400
    assert_alive(server)


BAD_SYNTAX = [b"", b"   ", b"{", b"[", b"nul", b"null", b'"text"', b"123", b"{\"a\": }", b'{"} trailing',
              b"[" * 100_000, b'{"n": ' + b"9" * 5000 + b"}", b'{"n": NaN}', b'{"n": Infinity}', b"{} {}"]
BAD_TYPES = {
    ("POST", "/proxies"): [b'{"name": 1.5, "upstream": "u"}', b'{"name": "\xff\xfe", "upstream": 5}',
                           b'{"name": "x", "upstream": "y", "enabled": "yes"}', b'{"name": "x", "upstream": "y", '
                           b'"listen": 8080}', b"[1, 2]"],
    ("POST", "/populate"): [b'[{"name": 1.5}]', b'[{"name": "a", "upstream": "b", "enabled": "yes"}]', b"[5]",
                            b'{"name": "a"}'],
    ("PATCH", "/proxies/p"): [b'{"name": 1.5}', b'{"enabled": "yes"}', b'{"listen": 8080}', b'{"upstream": []}'],
    ("POST", "/proxies/p/toxics"): [b'{"type": "latency", "toxicity": 1e400}', b'{"type": 5}', b'{"stream": 1}',
                                    b'{"type": "latency", "attributes": [1]}',
                                    b'{"type": "latency", "attributes": "x"}'],
    ("PATCH", "/proxies/p/toxics/t"): [b'{"toxicity": 1e400}', b'{"toxicity": "x"}', b'{"attributes": [1]}',
                                       b'{"attributes": {"latency": "x"}}', b'{"attributes": {"jitter": 0.5}}'],
}


@pytest.mark.parametrize("method, path", list(BAD_TYPES))
def test_malformed_json_gets_a_400(server: ServerThread, echo: EchoServer, method: str, path: str) -> None:
    requests.post(server.url + "/populate", json=[{"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}],
                  timeout=5)
    requests.post(server.url + "/proxies/p/toxics", json={"name": "t", "type": "latency"}, timeout=5)
    for body in BAD_SYNTAX + BAD_TYPES[method, path]:
        response = requests.request(method, server.url + path, data=body, timeout=10)
        assert response.status_code == 400, (body[:40], response.text)
        assert response.json()["status"] == 400
    assert_alive(server)


def test_keep_alive_and_pipelining(server: ServerThread) -> None:
    request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        first = sock.recv(65536)
        assert status_of(first) == 200
        sock.sendall(request + b"GET /nope HTTP/1.1\r\n\r\n" + b"PUT /proxies HTTP/1.1\r\nConnection: close\r\n\r\n")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    statuses = [int(part[:3]) for part in rest.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 404, 405]  # in request order; the server closed after "Connection: close"


def test_chunked_body_and_expect_continue(server: ServerThread, echo: EchoServer) -> None:
    body = json.dumps({"name": "chunky", "upstream": echo.address, "listen": "127.0.0.1:0"}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    head = (b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(chunked + b"0\r\nX-Trailer: yes\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 201
    requests.delete(server.url + "/proxies/chunky", timeout=5)


def test_large_valid_body_is_accepted(server: ServerThread, echo: EchoServer) -> None:
    body = {"name": "big", "upstream": echo.address, "listen": "127.0.0.1:0", "padding": "x" * 1_000_000}
    assert requests.post(server.url + "/proxies", json=body, timeout=10).status_code == 201
    requests.delete(server.url + "/proxies/big", timeout=5)


def random_request(rng: random.Random) -> bytes:
    """A mutation of a valid request: random methods, paths, headers, bodies, flipped and cut bytes."""
    method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "X" * rng.randint(1, 30)])
    path = rng.choice(["/proxies", "/proxies/p", "/proxies/p/toxics", "/proxies/p/toxics/t", "/populate",
                       "/reset", "/version", "/metrics", "/%ff%00", "/" + "a/" * rng.randint(0, 50), "*"])
    body = rng.choice([b"", b"{}", b"[]", json.dumps({"name": "f", "type": "latency"}).encode(),
                       bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))])
    data = bytearray(f"{method} {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    for _ in range(rng.randint(0, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.getrandbits(8)
    return bytes(data[:rng.randint(0, len(data))] if rng.random() < 0.2 else data)


def test_fuzzed_requests_never_take_the_server_down(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(20240601)
    for _ in range(400):
        answer = exchange(server, random_request(rng), timeout=3.0)
        if answer:
            assert 100 <= status_of(answer) < 600
    assert_alive(server)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def random_toxic(rng: random.Random, index: int) -> dict[str, Any]:
    value = lambda: rng.choice([0, 1, -1, 10, 1000, 2**31, -(2**40), 2**62, 1.5, "7", None, True])  # noqa: E731
    kind = rng.choice(["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data",
                       "noop", "bogus"])
    keys = ["latency", "jitter", "rate", "delay", "timeout", "average_size", "size_variation", "bytes"]
    return {"name": f"t{index}", "type": kind, "stream": rng.choice(["upstream", "downstream", "Up"]),
            "toxicity": rng.choice([0, 0.5, 1, 2, -1, "x"]),
            "attributes": {key: value() for key in rng.sample(keys, rng.randint(0, 4))}}


def test_random_toxic_settings_are_accepted_or_refused_but_never_crash(
        server: ServerThread, echo: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    listen = requests.post(server.url + "/proxies", json={"name": "fz", "upstream": echo.address,
                                                          "listen": "127.0.0.1:0"}, timeout=5).json()["listen"]
    rng = random.Random(7)
    for index in range(150):
        response = requests.post(server.url + "/proxies/fz/toxics", json=random_toxic(rng, index), timeout=5)
        assert response.status_code in (200, 400), response.text
        if response.status_code != 200:
            continue
        with connect(listen, timeout=0.2) as sock:  # traffic through whatever was accepted, then its removal
            try:
                sock.sendall(b"data")
                sock.recv(10)
            except OSError:
                pass  # timeouts, resets and early closes are what toxics do
            if rng.random() < 0.7:
                assert requests.delete(f"{server.url}/proxies/fz/toxics/t{index}", timeout=5).status_code == 204
    assert requests.post(server.url + "/reset", timeout=5).status_code == 204
    with connect(listen) as sock:
        sock.sendall(b"healthy")
        assert recv_exact(sock, 7) == b"healthy"
    requests.delete(server.url + "/proxies/fz", timeout=5)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
