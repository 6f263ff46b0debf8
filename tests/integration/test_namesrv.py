"""Real NameServer processes on free loopback ports, spoken to over real sockets with the remoting codec."""
from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.local.config import NamesrvConfig, Timing
from cluster.local.process import NodeProcess, stop_node
from harness.remoting import jsonbody
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.frame import SERIALIZE_ROCKETMQ, RemotingCommand, encode_command
from tests.helpers import namesrv_config, start_node, wait_until
from tests.remoting_testclient import RemotingConn, call, register_body_json, register_request, request, route_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FAST = Timing(namesrv_scan_interval=0.2, broker_expiry=1.0)
A, B = "127.0.0.1:30911", "127.0.0.1:30921"
SUCCESS = ResponseCode.SUCCESS


class Namesrv:
    def __init__(self, config: NamesrvConfig, node: NodeProcess) -> None:
        self.config, self.node, self.addr = config, node, config.listen_addr

    def log(self) -> str:
        return Path(self.config.log_file).read_text()


def launch(tmp_path: Path, reaper: list[NodeProcess], node_id: str = "ns-0", timing: Timing | None = None) -> Namesrv:
    config = namesrv_config(tmp_path, node_id, timing)
    node = start_node(config, tmp_path)
    reaper.append(node)
    return Namesrv(config, node)


@pytest.fixture
def ns(tmp_path: Path, node_reaper: list[NodeProcess]) -> Namesrv:
    return launch(tmp_path, node_reaper)


@pytest.fixture
def conns() -> Iterator[list[RemotingConn]]:
    opened: list[RemotingConn] = []
    yield opened
    for conn in opened:
        conn.close()


def connect(conns: list[RemotingConn], addr: str) -> RemotingConn:
    conns.append(RemotingConn(addr))
    return conns[-1]


def ok(response: RemotingCommand) -> RemotingCommand:
    assert response.code == SUCCESS, (response.code, response.remark)
    return response


def route_of(addr: str, topic: str) -> dict[str, Any]:
    return jsonbody.loads(ok(call(addr, route_request(topic))).body)


def has_route(addr: str, topic: str) -> bool:
    response = call(addr, route_request(topic))
    assert response.code in (SUCCESS, ResponseCode.TOPIC_NOT_EXIST), response.remark
    return response.code == SUCCESS


def cluster_info(addr: str) -> dict[str, Any]:
    return jsonbody.loads(ok(call(addr, request(RequestCode.GET_BROKER_CLUSTER_INFO))).body)


# ---------------------------------------------------------------- round trips

def test_register_route_and_cluster_info_round_trip(ns: Namesrv, conns: list[RemotingConn]) -> None:
    master, slave = connect(conns, ns.addr), connect(conns, ns.addr)
    first = ok(master.call(register_request(addr=A, topics={"TopicA": (4, 4, 6)})))
    assert "masterAddr" not in first.ext_fields and first.body == b""
    answer = ok(slave.call(register_request(addr=B, broker_id=1)))
    assert answer.ext_fields["masterAddr"] == A and answer.ext_fields["haServerAddr"] == "127.0.0.1:1"
    assert route_of(ns.addr, "TopicA") == {
        "brokerDatas": [{"brokerAddrs": {"0": A, "1": B}, "brokerName": "broker-a", "cluster": "DefaultCluster"}],
        "filterServerTable": {},
        "queueDatas": [{"brokerName": "broker-a", "perm": 6, "readQueueNums": 4, "topicSysFlag": 0,
                        "writeQueueNums": 4}]}
    raw = ok(call(ns.addr, request(RequestCode.GET_BROKER_CLUSTER_INFO))).body.decode()
    assert f'"brokerAddrs":{{0:"{A}",1:"{B}"}}' in raw  # ClusterInfo keeps fastjson's bare keys
    assert jsonbody.loads(raw)["clusterAddrTable"] == {"DefaultCluster": ["broker-a"]}
    wait_until(lambda: "broker registered (new): cluster=DefaultCluster name=broker-a id=1" in ns.log(),
               message="the registration log line")


def test_compressed_and_legacy_registrations(ns: Namesrv, conns: list[RemotingConn]) -> None:
    zipped, legacy = connect(conns, ns.addr), connect(conns, ns.addr)
    ok(zipped.call(register_request(addr=A, topics={"Zipped": (3, 2, 6)}, compressed=True)))
    assert route_of(ns.addr, "Zipped")["queueDatas"][0] == {
        "brokerName": "broker-a", "perm": 6, "readQueueNums": 3, "topicSysFlag": 0, "writeQueueNums": 2}
    # A pre-3.0.11 broker (version < 37) sends a bare TopicConfigSerializeWrapper.
    wrapper = json.loads(register_body_json({"Old": (1, 1, 6)}))["topicConfigSerializeWrapper"]
    old = register_request(addr=B, name="broker-old", with_crc=False, remoting_version=36)
    old.body = json.dumps(wrapper).encode()
    ok(legacy.call(old))
    assert route_of(ns.addr, "Old")["brokerDatas"][0]["brokerName"] == "broker-old"


def test_route_json_form_follows_the_request_version(ns: Namesrv, conns: list[RemotingConn]) -> None:
    ok(connect(conns, ns.addr).call(register_request(addr=A)))
    old = ok(call(ns.addr, route_request("TopicA", version=317))).body.decode()
    assert f'"brokerAddrs":{{0:"{A}"}}' in old
    for response in (call(ns.addr, route_request("TopicA", version=317, standard_only=True)),
                     call(ns.addr, route_request("TopicA", version=401))):
        assert json.loads(ok(response).body)["brokerDatas"][0]["brokerAddrs"] == {"0": A}
    missing = call(ns.addr, route_request("NoSuchTopic"))
    assert missing.code == ResponseCode.TOPIC_NOT_EXIST
    assert "No topic route info in name server for the topic: NoSuchTopic" in (missing.remark or "")


def test_binary_header_requests_are_answered_in_kind(ns: Namesrv) -> None:
    cmd = route_request("NoSuchTopic")
    cmd.serialize_type = SERIALIZE_ROCKETMQ
    response = call(ns.addr, cmd)
    assert response.code == ResponseCode.TOPIC_NOT_EXIST and response.serialize_type == SERIALIZE_ROCKETMQ


def test_oneway_registration_is_applied_without_a_reply(ns: Namesrv, conns: list[RemotingConn]) -> None:
    conn = connect(conns, ns.addr)
    conn.oneway(register_request(addr=A))
    wait_until(lambda: has_route(ns.addr, "TopicA"), message="the oneway registration")
    ok(conn.call(request(RequestCode.GET_BROKER_CLUSTER_INFO)))
    assert conn.unmatched == []


def test_topic_lists_write_perm_and_data_version(ns: Namesrv, conns: list[RemotingConn]) -> None:
    ok(connect(conns, ns.addr).call(register_request(addr=A, cluster="c1", topics={"T1": (1, 1, 6)})))
    ok(connect(conns, ns.addr).call(register_request(addr=B, name="broker-b", cluster="c2", version=(5, 2),
                                                     topics={"T2": (1, 1, 6), "T3": (1, 1, 6)})))
    every = ok(call(ns.addr, request(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER))).body
    assert json.loads(every) == {"topicList": ["T1", "T2", "T3"]}
    by_cluster = ok(call(ns.addr, request(RequestCode.GET_TOPICS_BY_CLUSTER, {"cluster": "c2"}))).body
    assert json.loads(by_cluster) == {"topicList": ["T2", "T3"]}
    wiped = ok(call(ns.addr, request(RequestCode.WIPE_WRITE_PERM_OF_BROKER, {"brokerName": "broker-b"})))
    assert wiped.ext_fields["wipeTopicCount"] == "2" and route_of(ns.addr, "T2")["queueDatas"][0]["perm"] == 4
    added = ok(call(ns.addr, request(RequestCode.ADD_WRITE_PERM_OF_BROKER, {"brokerName": "broker-b"})))
    assert added.ext_fields["addTopicCount"] == "2" and route_of(ns.addr, "T2")["queueDatas"][0]["perm"] == 6
    query = {"brokerName": "broker-b", "brokerAddr": B, "clusterName": "c2", "brokerId": 0}
    same = ok(call(ns.addr, request(RequestCode.QUERY_DATA_VERSION, query, b'{"counter":2,"timestamp":5}')))
    assert same.ext_fields["changed"] == "false" and json.loads(same.body) == {"counter": 2, "timestamp": 5}
    newer = ok(call(ns.addr, request(RequestCode.QUERY_DATA_VERSION, query, b'{"counter":3,"timestamp":5}')))
    assert newer.ext_fields["changed"] == "true"


def test_kv_config_round_trip_survives_a_restart(tmp_path: Path, node_reaper: list[NodeProcess]) -> None:
    ns = launch(tmp_path, node_reaper)
    key = {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicA"}
    ok(call(ns.addr, request(RequestCode.PUT_KV_CONFIG, key | {"value": "broker-a:4"})))
    ok(call(ns.addr, request(RequestCode.PUT_KV_CONFIG, {"namespace": "ns", "key": "gone", "value": "x"})))
    ok(call(ns.addr, request(RequestCode.DELETE_KV_CONFIG, {"namespace": "ns", "key": "gone"})))
    # The ORDER_TOPIC_CONFIG namespace travels back to every registering broker as a KVTable.
    assert json.loads(ok(call(ns.addr, register_request(addr=A))).body) == {"table": {"TopicA": "broker-a:4"}}
    stop_node(ns.node)
    again = launch(tmp_path, node_reaper)  # same node id: same data directory, a new port
    assert ok(call(again.addr, request(RequestCode.GET_KV_CONFIG, key))).ext_fields["value"] == "broker-a:4"
    gone = call(again.addr, request(RequestCode.GET_KV_CONFIG, {"namespace": "ns", "key": "gone"}))
    assert gone.code == ResponseCode.QUERY_NOT_FOUND and "Key: gone" in (gone.remark or "")


# ---------------------------------------------------------------- failure detection

def test_broker_that_stops_registering_expires(tmp_path: Path, node_reaper: list[NodeProcess],
                                               conns: list[RemotingConn]) -> None:
    ns = launch(tmp_path, node_reaper, timing=FAST)
    silent, keeper = connect(conns, ns.addr), connect(conns, ns.addr)
    ok(silent.call(register_request(addr=A, topics={"Silent": (1, 1, 6)})))
    registered = time.monotonic()

    def silent_gone_while_keeper_registers() -> bool:
        ok(keeper.call(register_request(addr=B, name="broker-b", topics={"Kept": (1, 1, 6)})))
        return not has_route(ns.addr, "Silent")

    wait_until(silent_gone_while_keeper_registers, timeout=15, interval=0.1, message="expiry of broker-a")
    assert time.monotonic() - registered >= FAST.broker_expiry
    assert has_route(ns.addr, "Kept")
    assert silent.closed_by_peer(timeout=5), "the NameServer closes an expired broker's connection"
    wait_until(lambda: f"broker expired: cluster=DefaultCluster name=broker-a id=0 addr={A}" in ns.log(),
               message="the expiry log line")


def test_closed_connection_drops_its_broker_at_once(ns: Namesrv, conns: list[RemotingConn]) -> None:
    conn = connect(conns, ns.addr)
    ok(conn.call(register_request(addr=A)))
    assert has_route(ns.addr, "TopicA")
    conn.close()  # default timers: expiry alone would take 120 s
    wait_until(lambda: not has_route(ns.addr, "TopicA"), timeout=5, message="removal on connection close")
    assert cluster_info(ns.addr) == {"brokerAddrTable": {}, "clusterAddrTable": {}}
    wait_until(lambda: "broker connection closed, removed: cluster=DefaultCluster name=broker-a id=0" in ns.log(),
               message="the connection-close log line")


def test_master_loss_and_promotion(ns: Namesrv, conns: list[RemotingConn]) -> None:
    master, slave = connect(conns, ns.addr), connect(conns, ns.addr)
    ok(master.call(register_request(addr=A)))
    ok(slave.call(register_request(addr=B, broker_id=1)))
    master.close()
    wait_until(lambda: route_of(ns.addr, "TopicA")["brokerDatas"][0]["brokerAddrs"] == {"1": B},
               timeout=5, message="the master's removal")
    # The queues stay in the route without a master, as in RocketMQ; the slave then takes over as id 0.
    assert route_of(ns.addr, "TopicA")["queueDatas"][0]["brokerName"] == "broker-a"
    ok(slave.call(register_request(addr=B, broker_id=0)))
    assert route_of(ns.addr, "TopicA")["brokerDatas"][0]["brokerAddrs"] == {"0": B}
    wait_until(lambda: "broker group has no master: name=broker-a (queue data kept" in ns.log()
               and "broker registered (role change): cluster=DefaultCluster name=broker-a id=0" in ns.log(),
               message="the failover log lines")
    ok(slave.call(register_request(addr=B, broker_id=2)))  # and steps down again (DLedger: selfId + 1)
    assert route_of(ns.addr, "TopicA")["brokerDatas"][0]["brokerAddrs"] == {"2": B}
    wait_until(lambda: f"broker group has no master: name=broker-a (master {B} re-registered as id 2)" in ns.log(),
               message="the step-down log line")


def test_three_namesrvs_are_independent(tmp_path: Path, node_reaper: list[NodeProcess],
                                        conns: list[RemotingConn]) -> None:
    servers = [launch(tmp_path, node_reaper, f"ns-{i}") for i in range(3)]
    for server in servers[:2]:
        ok(connect(conns, server.addr).call(register_request(addr=A)))
    assert all(has_route(server.addr, "TopicA") for server in servers[:2])
    assert not has_route(servers[2].addr, "TopicA")
    assert cluster_info(servers[2].addr) == {"brokerAddrTable": {}, "clusterAddrTable": {}}


# ---------------------------------------------------------------- bad input

def register_with(body: bytes | None = None, **ext: str | None) -> RemotingCommand:
    cmd = register_request(addr=A, with_crc=body is None)
    cmd.body = cmd.body if body is None else body
    for key, value in ext.items():
        if value is None:
            cmd.ext_fields.pop(key)
        else:
            cmd.ext_fields[key] = value
    return cmd


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("route-without-topic", lambda: request(RequestCode.GET_ROUTEINFO_BY_TOPIC), 1, "<topic> is null"),
    ("register-without-addr", lambda: register_with(brokerAddr=None), 1, "<brokerAddr> is null"),
    ("register-bad-id", lambda: register_with(brokerId="abc"), 1, "<brokerId> is not an integer"),
    ("register-bad-crc", lambda: register_with(bodyCrc32="12345"), 1, "crc32 not match"),
    ("register-not-json", lambda: register_with(b"{nope"), 1, "Failed to decode RegisterBrokerBody"),
    ("register-wrong-type", lambda: register_with(
        b'{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"readQueueNums":[1]}}}}'), 1,
     "topicConfigTable.T.readQueueNums"),
    ("register-json-as-zlib", lambda: register_with(register_body_json({"T": (1, 1, 6)}), compressed="true"), 1,
     "Failed to decode RegisterBrokerBody"),
    ("data-version-not-json", lambda: request(RequestCode.QUERY_DATA_VERSION, {
        "brokerName": "b", "brokerAddr": A, "clusterName": "c", "brokerId": 0}, b"\xff"), 1, "DataVersion"),
    ("kv-without-value", lambda: request(RequestCode.PUT_KV_CONFIG, {"namespace": "n", "key": "k"}), 1,
     "<value> is null"),
    ("topics-without-cluster", lambda: request(RequestCode.GET_TOPICS_BY_CLUSTER), 1, "<cluster> is null"),
    ("wipe-without-name", lambda: request(RequestCode.WIPE_WRITE_PERM_OF_BROKER), 1, "<brokerName> is null"),
    ("unknown-code", lambda: request(9999), ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
     " request type 9999 not supported"),
]


def test_bad_requests_get_error_responses_and_the_connection_goes_on(ns: Namesrv, conns: list[RemotingConn]) -> None:
    conn = connect(conns, ns.addr)
    for name, build, code, remark in BAD_REQUESTS:
        response = conn.call(build())
        assert (response.code, remark in (response.remark or "")) == (code, True), (name, response.remark)
    conn.oneway(request(RequestCode.GET_ROUTEINFO_BY_TOPIC))  # a oneway request never gets an answer
    assert cluster_info(ns.addr) == {"brokerAddrTable": {}, "clusterAddrTable": {}}
    ok(conn.call(register_request(addr=A)))
    assert conn.unmatched == [] and has_route(ns.addr, "TopicA")
    assert "Traceback" not in ns.log()  # refused as bad input, not caught as a crash


def frame(header: bytes, *, serialize: int = 0, header_len: int | None = None) -> bytes:
    word = (serialize << 24) | (len(header) if header_len is None else header_len)
    return struct.pack(">ii", 4 + len(header), word) + header


MALFORMED = {
    "oversize-length": struct.pack(">i", 16 * 1024 * 1024) + bytes(16),
    "negative-length": struct.pack(">i", -5) + bytes(16),
    "header-longer-than-frame": frame(b"{}", header_len=1000),
    "http-garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "json-header-not-json": frame(b"{nope"),
    "json-header-not-object": frame(b"[1,2]"),
    "json-header-without-code": frame(b'{"opaque":1}'),
    "unknown-serialize-type": frame(b"{}", serialize=7),
    "binary-header-truncated": frame(b"\x00\x69\x03", serialize=1),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_closes_only_its_own_connection(ns: Namesrv, conns: list[RemotingConn], data: bytes) -> None:
    bystander = connect(conns, ns.addr)
    ok(bystander.call(register_request(addr=A)))
    bad = connect(conns, ns.addr)
    bad.send_raw(data)
    assert bad.closed_by_peer(timeout=5)
    ok(bystander.call(route_request("TopicA")))  # its broker is still registered: only `bad` was closed
    assert has_route(ns.addr, "TopicA")


def test_frames_split_across_writes_and_abandoned_frames(ns: Namesrv, conns: list[RemotingConn]) -> None:
    slow = connect(conns, ns.addr)
    cmd = route_request("NoSuchTopic")
    cmd.opaque = 424242
    data = encode_command(cmd)
    slow.send_raw(data[:10])
    assert call(ns.addr, route_request("NoSuchTopic")).code == ResponseCode.TOPIC_NOT_EXIST
    slow.send_raw(data[10:])
    assert slow.response_to(424242, timeout=5).code == ResponseCode.TOPIC_NOT_EXIST
    abandoned = connect(conns, ns.addr)
    abandoned.send_raw(data[:7])
    abandoned.close()
    assert call(ns.addr, route_request("NoSuchTopic")).code == ResponseCode.TOPIC_NOT_EXIST
