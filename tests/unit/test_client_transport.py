"""The remoting transport against an in-process fake server: matching, pipelining, timeouts, connection loss,
server->client requests, reconnects, and the same under gevent in a subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import pytest

from harness.errors import RemotingConnectError, RemotingError, RemotingTimeoutError
from harness.remoting.client import RemotingConnection
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.frame import FLAG_ONEWAY, SERIALIZE_ROCKETMQ, RemotingCommand
from harness.remoting.pool import ConnectionPool
from tests.fake_remoting_server import FakeServer, Peer
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def cmd(n: object = "", code: int = RequestCode.GET_MAX_OFFSET) -> RemotingCommand:
    return RemotingCommand(code=code, ext_fields={"n": str(n)})


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def test_sync_calls_from_many_threads_get_their_own_responses(server: FakeServer) -> None:
    conn = RemotingConnection(server.addr)
    errors: list[str] = []

    def worker(k: int) -> None:
        for i in range(50):
            resp = conn.invoke(cmd(f"{k}-{i}"), timeout=5)
            if resp.ext_fields["echo"] != f"{k}-{i}":
                errors.append(f"{k}-{i} got {resp.ext_fields['echo']}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    conn.close()
    assert errors == []


def test_pipelined_calls_are_matched_even_when_answered_in_reverse() -> None:
    held: list[tuple[Peer, RemotingCommand]] = []

    def reverse(peer: Peer, request: RemotingCommand) -> None:
        held.append((peer, request))
        if len(held) == 500:
            for p, r in reversed(held):
                p.reply(r, 0, echo=r.ext_fields["n"])

    with FakeServer(reverse) as srv:
        conn = RemotingConnection(srv.addr)
        futures = [conn.invoke_async(cmd(i), timeout=10, convert=lambda r: r.ext_fields["echo"]) for i in range(500)]
        done, not_done = wait(futures, timeout=10)
        assert not not_done
        assert [f.result() for f in futures] == [str(i) for i in range(500)]
        assert conn.pending_count == 0
        conn.close()


def test_a_silent_server_times_out_sync_and_async_calls() -> None:
    with FakeServer(lambda peer, request: None) as srv:
        conn = RemotingConnection(srv.addr)
        start = time.monotonic()
        with pytest.raises(RemotingTimeoutError):
            conn.invoke(cmd(), timeout=0.3)
        assert 0.25 < time.monotonic() - start < 2
        start = time.monotonic()
        fut = conn.invoke_async(cmd(), timeout=0.3)
        with pytest.raises(RemotingTimeoutError):
            fut.result(timeout=5)
        assert time.monotonic() - start < 2
        assert conn.pending_count == 0 and not conn.closed
        conn.close()


def test_a_listening_socket_that_never_accepts_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshake; nobody ever reads
        conn = RemotingConnection(f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout=2)
        start = time.monotonic()
        with pytest.raises(RemotingTimeoutError):
            conn.invoke(cmd(), timeout=0.3)
        with pytest.raises(RemotingTimeoutError):
            conn.invoke_async(cmd(), timeout=0.3).result(timeout=5)
        assert time.monotonic() - start < 3
        conn.close()


def test_a_late_response_after_a_timeout_is_dropped() -> None:
    late: list[tuple[Peer, RemotingCommand]] = []
    with FakeServer(lambda peer, request: late.append((peer, request))) as srv:
        conn = RemotingConnection(srv.addr)
        with pytest.raises(RemotingTimeoutError):
            conn.invoke(cmd(), timeout=0.1)
        peer, request = late[0]
        peer.reply(request, 0)
        srv.handler = lambda p, r: p.reply(r, 0, echo="next")
        assert conn.invoke(cmd(), timeout=5).ext_fields["echo"] == "next"
        conn.close()


def test_connection_loss_fails_every_pending_call_at_once() -> None:
    received = threading.Event()

    def hold_then_nothing(peer: Peer, request: RemotingCommand) -> None:
        received.set()

    with FakeServer(hold_then_nothing) as srv:
        conn = RemotingConnection(srv.addr)
        futures = [conn.invoke_async(cmd(i), timeout=30) for i in range(10)]
        sync_error: list[BaseException] = []
        t = threading.Thread(target=lambda: _capture(lambda: conn.invoke(cmd(), timeout=30), sync_error))
        t.start()
        wait_until(lambda: received.is_set() and conn.pending_count == 11, timeout=5)
        start = time.monotonic()
        srv.close()
        done, _ = wait(futures, timeout=5)
        t.join(5)
        assert time.monotonic() - start < 5 and len(done) == 10
        errors = [f.exception() for f in futures] + sync_error
        assert all(isinstance(e, RemotingError) and not isinstance(e, RemotingTimeoutError) for e in errors)
        assert conn.closed
        with pytest.raises(RemotingConnectError):
            conn.invoke(cmd(), timeout=1)


def _capture(call: object, into: list[BaseException]) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        into.append(exc)


def test_connect_refused_is_a_connect_error() -> None:
    with FakeServer() as srv:
        addr = srv.addr
    with pytest.raises(RemotingConnectError):
        RemotingConnection(addr, connect_timeout=1)


def test_server_requests_go_to_the_handler_and_only_two_way_ones_are_answered(server: FakeServer) -> None:
    seen: list[int] = []

    def on_request(conn: RemotingConnection, request: RemotingCommand) -> RemotingCommand | None:
        seen.append(request.code)
        if request.code == RequestCode.GET_CONSUMER_RUNNING_INFO:
            return request.make_response(ResponseCode.SUCCESS, remark="handled")
        return None

    conn = RemotingConnection(server.addr, on_request=on_request)
    conn.invoke(cmd(), timeout=5)  # makes sure the server has accepted us
    peer = server.peers[0]
    peer.send(RemotingCommand(code=RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, opaque=7, flag=FLAG_ONEWAY,
                              ext_fields={"consumerGroup": "g"}))
    peer.send(RemotingCommand(code=RequestCode.CHECK_TRANSACTION_STATE, opaque=8))
    peer.send(RemotingCommand(code=RequestCode.GET_CONSUMER_RUNNING_INFO, opaque=9))
    wait_until(lambda: len([c for c in peer.received if c.is_response]) == 2, timeout=5)
    replies = {c.opaque: c for c in peer.received if c.is_response}
    assert seen == [RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, RequestCode.CHECK_TRANSACTION_STATE,
                    RequestCode.GET_CONSUMER_RUNNING_INFO]
    assert set(replies) == {8, 9}  # nothing for the oneway notification
    assert replies[8].code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
    assert (replies[9].code, replies[9].remark) == (ResponseCode.SUCCESS, "handled")
    conn.close()


def test_binary_rocketmq_headers_in_responses_are_accepted() -> None:
    def binary(peer: Peer, request: RemotingCommand) -> None:
        resp = request.make_response(0, ext_fields={"offset": 42})
        resp.serialize_type = SERIALIZE_ROCKETMQ
        peer.send(resp)

    with FakeServer(binary) as srv:
        conn = RemotingConnection(srv.addr)
        assert conn.invoke(cmd(), timeout=5).ext_fields == {"offset": "42"}
        conn.close()


def test_oneway_calls_are_flagged_and_never_wait(server: FakeServer) -> None:
    conn = RemotingConnection(server.addr)
    conn.invoke_oneway(cmd("x"))
    wait_until(lambda: server.peers and server.peers[0].received, timeout=5)
    assert server.peers[0].received[0].is_oneway
    assert conn.pending_count == 0
    conn.close()


def test_pool_reconnects_lazily_after_the_connection_dropped(server: FakeServer) -> None:
    with ConnectionPool(connect_timeout=2) as pool:
        first = pool.get(server.addr)
        assert pool.invoke(server.addr, cmd(1), timeout=5).ext_fields["echo"] == "1"
        server.peers[0].close()
        wait_until(lambda: first.closed, timeout=5)
        assert pool.invoke(server.addr, cmd(2), timeout=5).ext_fields["echo"] == "2"
        assert pool.get(server.addr) is not first
    assert first.closed
    with pytest.raises(RemotingConnectError):
        pool.get(server.addr)


def test_callers_queued_behind_a_hanging_connect_share_its_failure() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        addr = f"127.0.0.1:{listener.getsockname()[1]}"
        filler = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))  # the backlog is full now
        errors: list[BaseException] = []
        with ConnectionPool(connect_timeout=0.5) as pool:
            threads = [threading.Thread(target=_capture, args=(lambda: pool.get(addr), errors)) for _ in range(4)]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            elapsed = time.monotonic() - start
        filler.close()
    assert len(errors) == 4 and all(isinstance(e, RemotingConnectError) for e in errors)
    assert elapsed < 1.5  # one 0.5 s attempt, not four in a row


GEVENT_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import socket, threading, time
assert socket.socket.__module__.startswith("gevent"), socket.socket
from concurrent.futures import wait
from harness.errors import RemotingTimeoutError
from harness.remoting.client import RemotingConnection
from harness.remoting.frame import RemotingCommand
from tests.fake_remoting_server import FakeServer

def cmd(n):
    return RemotingCommand(code=30, ext_fields={"n": str(n)})

with FakeServer() as srv:
    conn = RemotingConnection(srv.addr)
    futures = [conn.invoke_async(cmd(i), 5, lambda r: r.ext_fields["echo"]) for i in range(300)]
    wait(futures, timeout=10)
    assert [f.result() for f in futures] == [str(i) for i in range(300)]
    import gevent
    jobs = [gevent.spawn(conn.invoke, cmd(i), 5) for i in range(50)]
    gevent.joinall(jobs, timeout=10)
    assert [j.value.ext_fields["echo"] for j in jobs] == [str(i) for i in range(50)]
    conn.close()
with FakeServer(lambda peer, request: None) as srv:
    conn = RemotingConnection(srv.addr)
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(time.sleep(0.01)) for _ in range(20)])
    t0 = time.monotonic()
    try:
        conn.invoke(cmd(0), 0.3)
        raise SystemExit("no timeout")
    except RemotingTimeoutError:
        pass
    fut = conn.invoke_async(cmd(1), 0.3)
    try:
        fut.result(5)
        raise SystemExit("no async timeout")
    except RemotingTimeoutError:
        pass
    assert time.monotonic() - t0 < 3
    ticker.join(5)
    assert len(ticks) == 20, "the blocked call must not starve other greenlets"
    conn.close()
print("GEVENT-OK")
"""


def test_works_under_gevent_monkey_patching() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GEVENT-OK" in proc.stdout
