"""MQClient against scripted fake NameServers and brokers that behave like real Java ones: bare-key routes,
binary response headers, groups without a master, error codes, silence, and server->client notifications."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from harness.errors import RemotingConnectError, RemotingError, RemotingTimeoutError, ResponseError
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.commands import Message
from harness.remoting.frame import FLAG_ONEWAY, SERIALIZE_ROCKETMQ, RemotingCommand
from harness.remoting.message import HostAddress, MessageExt, decode_properties
from harness.remoting.mq import MQClient
from harness.remoting.route import MessageQueue
from tests.fake_remoting_server import FakeServer, Peer
from tests.helpers import wait_until

BrokerHandler = Callable[[Peer, RemotingCommand], None]


def bare_key_route(brokers: dict[str, dict[int, str]], queues: int = 2) -> bytes:
    """A route as an old-version request gets it from a real NameServer: bare numeric keys, topicSynFlag."""
    datas = ",".join('{"brokerAddrs":{%s},"brokerName":"%s","cluster":"c"}'
                     % (",".join(f'{i}:"{a}"' for i, a in addrs.items()), name) for name, addrs in brokers.items())
    queue_datas = ",".join('{"brokerName":"%s","perm":6,"readQueueNums":%d,"topicSynFlag":0,"writeQueueNums":%d}'
                           % (name, queues, queues) for name in brokers)
    return f'{{"brokerDatas":[{datas}],"queueDatas":[{queue_datas}]}}'.encode()


class FakeNamesrv(FakeServer):
    def __init__(self, routes: dict[str, bytes]) -> None:
        self.routes = routes
        self.route_requests: list[RemotingCommand] = []
        super().__init__(self._handle)

    def _handle(self, peer: Peer, request: RemotingCommand) -> None:
        if request.code == RequestCode.GET_ROUTEINFO_BY_TOPIC:
            self.route_requests.append(request)
            body = self.routes.get(request.ext_fields["topic"])
            if body is None:
                peer.send(request.make_response(ResponseCode.TOPIC_NOT_EXIST, "No topic route info"))
            else:
                peer.send(request.make_response(0, body=body))
        elif request.code == RequestCode.GET_BROKER_CLUSTER_INFO:
            peer.send(request.make_response(0, body=self.routes["__cluster__"]))


def sending_broker(code: int = 0, binary: bool = False) -> BrokerHandler:
    counter = iter(range(1_000_000))

    def handle(peer: Peer, request: RemotingCommand) -> None:
        if request.is_oneway:
            return
        resp = request.make_response(code, "refused" if code not in (0, 10, 11, 12) else None, ext_fields={
            "msgId": "7F00000100002A9F0000000000000000", "queueId": request.ext_fields.get("e", 0),
            "queueOffset": next(counter), "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"})
        if binary:
            resp.serialize_type = SERIALIZE_ROCKETMQ
        peer.send(resp)
    return handle


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started: list[FakeServer] = []
    yield started
    for server in started:
        server.close()


def setup(servers: list[FakeServer], brokers: dict[str, BrokerHandler], ids: dict[str, list[int]] | None = None,
          **client_args: object) -> tuple[MQClient, FakeNamesrv, dict[str, FakeServer]]:
    fakes = {name: FakeServer(handler) for name, handler in brokers.items()}
    servers.extend(fakes.values())
    addrs = {name: {i: fakes[name].addr for i in (ids or {}).get(name, [0])} for name in brokers}
    ns = FakeNamesrv({"T": bare_key_route(addrs), "TBW102": bare_key_route(addrs, queues=8)})
    servers.append(ns)
    client = MQClient([ns.addr], **client_args)  # type: ignore[arg-type]
    return client, ns, fakes


def test_route_request_asks_for_standard_json_and_parses_bare_keys(servers: list[FakeServer]) -> None:
    client, ns, fakes = setup(servers, {"a": sending_broker()})
    with client:
        route = client.topic_route("T")
        assert route.master_addr("a") == fakes["a"].addr
        request = ns.route_requests[0]
        assert request.version >= 401 and request.ext_fields["acceptStandardJsonOnly"] == "true"


def test_send_round_robins_and_reads_binary_responses(servers: list[FakeServer]) -> None:
    client, _ns, _ = setup(servers, {"a": sending_broker(binary=True), "b": sending_broker()})
    with client:
        results = [client.send(Message("T", b"x")) for _ in range(8)]
    assert {r.status for r in results} == {"SEND_OK"}
    assert len({(r.queue.broker_name, r.queue.queue_id) for r in results}) == 4
    assert len({r.msg_id for r in results}) == 8


@pytest.mark.parametrize(("code", "status"), [(10, "FLUSH_DISK_TIMEOUT"), (11, "SLAVE_NOT_AVAILABLE"),
                                              (12, "FLUSH_SLAVE_TIMEOUT")])
def test_degraded_codes_are_statuses_not_retried(servers: list[FakeServer], code: int, status: str) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker(code)})
    with client:
        assert client.send(Message("T", b"x")).status == status
    assert len(fakes["a"].peers[0].received) == 1


def test_retryable_code_moves_to_another_broker_group(servers: list[FakeServer]) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker(ResponseCode.SERVICE_NOT_AVAILABLE),
                                         "b": sending_broker()})
    with client:
        results = [client.send(Message("T", b"x")) for _ in range(6)]
    assert {r.queue.broker_name for r in results} == {"b"}


def test_non_retryable_code_raises_at_once(servers: list[FakeServer]) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker(ResponseCode.MESSAGE_ILLEGAL)})
    with client, pytest.raises(ResponseError) as info:
        client.send(Message("T", b"x"))
    assert info.value.code == ResponseCode.MESSAGE_ILLEGAL
    assert len(fakes["a"].peers[0].received) == 1


def test_exhausted_retries_with_only_refusals_raise_the_response_error(servers: list[FakeServer]) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker(ResponseCode.SYSTEM_ERROR)})
    with client, pytest.raises(ResponseError):
        client.send(Message("T", b"x"), retries=2)
    assert len(fakes["a"].peers[0].received) == 3


def test_a_silent_broker_makes_the_send_ambiguous(servers: list[FakeServer]) -> None:
    client, _ns, _ = setup(servers, {"a": lambda peer, request: None, "b": sending_broker(1)})
    with client:
        start = time.monotonic()
        with pytest.raises(RemotingTimeoutError):
            client.send(Message("T", b"x"), timeout=0.3, retries=2)
        assert time.monotonic() - start < 3


def test_an_unreachable_broker_is_certainly_not_delivered(servers: list[FakeServer]) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker()})
    fakes["a"].close()
    with client, pytest.raises(RemotingConnectError):
        client.send(Message("T", b"x"), retries=1)


def test_groups_without_a_master_are_not_sent_to(servers: list[FakeServer]) -> None:
    client, _ns, _ = setup(servers, {"a": sending_broker(), "b": sending_broker()}, ids={"a": [0], "b": [1, 3]})
    with client:
        assert {client.send(Message("T", b"x")).queue.broker_name for _ in range(6)} == {"a"}


def test_unknown_topic_goes_to_tbw102_brokers_with_four_queues(servers: list[FakeServer]) -> None:
    client, ns, fakes = setup(servers, {"a": sending_broker()})
    with client:
        results = [client.send(Message("NEW", b"x")) for _ in range(8)]
    assert {r.queue.queue_id for r in results} == {0, 1, 2, 3}
    sent = fakes["a"].peers[0].received[0].ext_fields
    assert (sent["b"], sent["c"], sent["d"]) == ("NEW", "TBW102", "4")


def test_a_route_lookup_failing_everywhere_keeps_the_cached_route(servers: list[FakeServer]) -> None:
    client, ns, _ = setup(servers, {"a": sending_broker()})
    with client:
        first = client.topic_route("T")
        ns.close()
        assert client.topic_route("T", refresh=True) is first
        assert client.send(Message("T", b"x")).status == "SEND_OK"


def test_namesrv_fail_over_from_a_dead_first_address(servers: list[FakeServer],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _client, ns, _ = setup(servers, {"a": sending_broker()})
    dead = FakeServer()
    dead.close()
    monkeypatch.setattr("harness.remoting.mq.random.randrange", lambda n: 0)
    with MQClient([dead.addr, ns.addr]) as client:
        assert client.topic_route("T").brokers["a"]
        assert client.namesrv_addrs[client._ns_index] == ns.addr  # sticks to the one that answered


def test_all_namesrvs_silent_raises_a_remoting_error(servers: list[FakeServer]) -> None:
    silent = FakeServer(lambda peer, request: None)
    servers.append(silent)
    with MQClient([silent.addr], rpc_timeout=0.3) as client, pytest.raises(RemotingError):
        client.topic_route("T")


def test_notify_consumer_ids_changed_reaches_the_group_listener(servers: list[FakeServer]) -> None:
    def broker(peer: Peer, request: RemotingCommand) -> None:
        peer.reply(request, 0)
        if request.code == RequestCode.HEART_BEAT:
            peer.send(RemotingCommand(code=RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, opaque=99, flag=FLAG_ONEWAY,
                                      ext_fields={"consumerGroup": "g"}))

    client, _ns, fakes = setup(servers, {"a": broker})
    fired = threading.Event()
    with client:
        client.add_rebalance_listener("g", fired.set)
        client.heartbeat("g", ["T"])
        assert fired.wait(5)
        heartbeat = [c for c in fakes["a"].peers[0].received if c.code == RequestCode.HEART_BEAT][0]
        assert b'"groupName":"g"' in heartbeat.body
    wait_until(lambda: any(c.code == RequestCode.UNREGISTER_CLIENT for c in fakes["a"].peers[0].received),
               timeout=5, message="unregister on close")
    assert not [c for c in fakes["a"].peers[0].received if c.is_response]  # the notification got no reply


def test_pull_follows_the_suggested_broker_and_clears_commit_for_slaves(servers: list[FakeServer]) -> None:
    seen: list[tuple[str, str]] = []

    def broker(name: str, suggest: int) -> BrokerHandler:
        def handle(peer: Peer, request: RemotingCommand) -> None:
            seen.append((name, request.ext_fields["sysFlag"]))
            peer.reply(request, ResponseCode.PULL_NOT_FOUND, nextBeginOffset=0, minOffset=0, maxOffset=0,
                       suggestWhichBrokerId=suggest)
        return handle

    master, slave = FakeServer(broker("master", 1)), FakeServer(broker("slave", 0))
    servers.extend([master, slave])
    ns = FakeNamesrv({"T": bare_key_route({"a": {0: master.addr, 1: slave.addr}})})
    servers.append(ns)
    mq = MessageQueue("T", "a", 0)
    with MQClient([ns.addr]) as client:
        for _ in range(3):
            assert client.pull(mq, 0, group="g", commit_offset=5).status == "NO_NEW_MSG"
        client.pull(mq, 0, group="g", broker_id=1)
    assert seen == [("master", "5"), ("slave", "4"), ("master", "5"), ("slave", "4")]


def test_send_back_falls_back_to_a_retry_topic_send_when_the_store_host_is_gone(servers: list[FakeServer]) -> None:
    client, _ns, fakes = setup(servers, {"a": sending_broker()})
    gone = FakeServer()
    gone.close()
    host, port = gone.addr.rsplit(":", 1)
    msg = MessageExt("T", b"body", {"UNIQ_KEY": "U1", "TAGS": "t"}, reconsume_times=2,
                     store_host=HostAddress(host, int(port)))
    with client:
        client.send_back(msg, "grp", max_reconsume_times=5)
    sent = fakes["a"].peers[0].received[0]
    assert sent.code == RequestCode.SEND_MESSAGE_V2 and sent.body == b"body"
    assert (sent.ext_fields["b"], sent.ext_fields["j"], sent.ext_fields["l"]) == ("%RETRY%grp", "3", "5")
    props = decode_properties(sent.ext_fields["i"])
    assert (props["RETRY_TOPIC"], props["ORIGIN_MESSAGE_ID"], props["DELAY"], props["UNIQ_KEY"]) == (
        "T", "U1", "5", "U1")


def test_an_async_send_refused_by_a_non_leader_triggers_a_route_refresh(servers: list[FakeServer]) -> None:
    client, ns, _ = setup(servers, {"a": sending_broker(ResponseCode.SERVICE_NOT_AVAILABLE)})
    with client:
        with pytest.raises(ResponseError):
            client.send_async(Message("T", b"x")).result(timeout=5)
        wait_until(lambda: len(ns.route_requests) >= 2, timeout=5, message="a second route lookup")


def test_a_group_without_master_fails_fast_and_the_new_master_is_picked_up(servers: list[FakeServer]) -> None:
    client, ns, fakes = setup(servers, {"a": sending_broker()}, ids={"a": [1, 2]})  # between leaders
    with client:
        with pytest.raises(RemotingConnectError):
            client.send(Message("T", b"x"))
        ns.routes["T"] = bare_key_route({"a": {0: fakes["a"].addr, 2: fakes["a"].addr}})  # a leader is elected
        wait_until(lambda: client.send(Message("T", b"x"), retries=0).status == "SEND_OK", timeout=5,
                   message="a send after the route refresh")
