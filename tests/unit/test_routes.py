"""The NameServer route table as pure logic: registration, master switch, expiry, connection drops, JSON shapes."""
from __future__ import annotations

import json

import pytest

from cluster.local.namesrv import BadRequest, parse_register_body
from cluster.local.routes import DataVersion, RegisterResult, RouteTable, TopicConfig, encode_body
from harness.remoting import jsonbody
from tests.remoting_testclient import register_body_compressed, register_body_json

A, B, C = "10.0.0.1:10911", "10.0.0.2:10911", "10.0.0.3:10911"
V1, V2 = DataVersion(timestamp=100, counter=1), DataVersion(timestamp=100, counter=2)
TOPICS = [TopicConfig("TopicA", 4, 4, 6), TopicConfig("TopicB", 2, 2, 6)]


def register(table: RouteTable, addr: str, broker_id: int, *, name: str = "broker-a", cluster: str = "c1",
             topics: list[TopicConfig] | None = None, version: DataVersion = V1, conn: int = 1,
             now: float = 0.0) -> RegisterResult:
    return table.register_broker(cluster=cluster, broker_name=name, broker_id=broker_id, addr=addr,
                                 ha_server_addr=addr.replace("10911", "10912"), data_version=version,
                                 topics=TOPICS if topics is None else topics, conn_id=conn, now=now)


@pytest.fixture
def group() -> RouteTable:
    """broker-a: master A (conn 1), slaves B (conn 2) and C (conn 3), all registered at t=0."""
    table = RouteTable()
    register(table, A, 0, conn=1)
    register(table, B, 1, conn=2)
    register(table, C, 2, conn=3)
    return table


# ---------------------------------------------------------------- registration

def test_first_master_registration_fills_every_table() -> None:
    table = RouteTable()
    result = register(table, A, 0)
    assert result.first and result.topics_updated and result.kind == "new"
    assert result.master_addr is None  # only slaves are told their master
    assert table.cluster_addr_table == {"c1": {"broker-a"}}
    assert table.broker_addr_table["broker-a"].broker_addrs == {0: A}
    assert table.topic_queue_table["TopicA"]["broker-a"].write_queue_nums == 4
    assert table.route_for("TopicA") == {
        "brokerDatas": [{"brokerAddrs": {0: A}, "brokerName": "broker-a", "cluster": "c1"}],
        "filterServerTable": {},
        "queueDatas": [{"brokerName": "broker-a", "perm": 6, "readQueueNums": 4, "topicSysFlag": 0,
                        "writeQueueNums": 4}]}


def test_slave_learns_master_and_ha_address_and_its_topics_are_ignored() -> None:
    table = RouteTable()
    register(table, A, 0, topics=[TopicConfig("TopicA", 4, 4, 6)])
    result = register(table, B, 1, topics=[TopicConfig("SlaveOnly", 1, 1, 6)])
    assert (result.master_addr, result.ha_server_addr) == (A, "10.0.0.1:10912")
    assert table.route_for("SlaveOnly") is None


def test_slave_of_a_group_without_master_gets_no_master_address() -> None:
    result = register(RouteTable(), B, 1)
    assert result.master_addr is None and result.ha_server_addr is None


def test_periodic_registration_updates_topics_only_when_the_data_version_changes() -> None:
    table = RouteTable()
    register(table, A, 0, topics=[TopicConfig("TopicA", 4, 4, 6)])
    same = register(table, A, 0, topics=[TopicConfig("TopicA", 8, 8, 6)])
    assert not same.topics_updated and same.kind == "periodic"
    assert table.topic_queue_table["TopicA"]["broker-a"].write_queue_nums == 4
    changed = register(table, A, 0, topics=[TopicConfig("TopicA", 8, 8, 6)], version=V2)
    assert changed.topics_updated
    assert table.topic_queue_table["TopicA"]["broker-a"].write_queue_nums == 8


def test_slave_promoted_to_master_replaces_old_master_and_drops_its_slave_entry(group: RouteTable) -> None:
    result = register(group, B, 0, conn=2)
    assert result.kind == "role change" and result.previous_id == 1 and result.replaced_addr == A
    assert group.broker_addr_table["broker-a"].broker_addrs == {0: B, 2: C}
    old = register(group, A, 1, conn=1)  # the old master comes back as a follower
    assert old.previous_id is None and old.master_addr == B
    assert group.broker_addr_table["broker-a"].broker_addrs == {0: B, 1: A, 2: C}


def test_the_same_address_holds_one_id_only() -> None:
    table = RouteTable()
    register(table, A, 1)
    register(table, A, 2)
    assert table.broker_addr_table["broker-a"].broker_addrs == {2: A}


# ---------------------------------------------------------------- removal

def test_scan_drops_only_brokers_silent_for_longer_than_the_expiry() -> None:
    table = RouteTable()
    register(table, A, 0, now=0.0)
    register(table, B, 0, name="broker-b", now=5.0)
    assert table.scan_expired(now=10.0, expiry=10.0) == []  # exactly at the expiry: still alive
    dropped = table.scan_expired(now=10.5, expiry=10.0)
    assert [(d.addr, d.broker_name, d.broker_id, d.group_removed) for d in dropped] == [(A, "broker-a", 0, True)]
    assert "broker-a" not in table.broker_addr_table and A not in table.broker_live_table
    assert set(table.topic_queue_table["TopicA"]) == {"broker-b"}


def test_expired_master_leaves_queue_data_of_a_group_with_slaves(group: RouteTable) -> None:
    register(group, B, 1, conn=2, now=30.0)
    register(group, C, 2, conn=3, now=30.0)
    [dropped] = group.scan_expired(now=31.0, expiry=30.0)
    assert dropped.addr == A and dropped.was_in_route and not dropped.group_removed
    route = group.route_for("TopicA")
    assert route is not None and route["brokerDatas"][0]["brokerAddrs"] == {1: B, 2: C}
    assert route["queueDatas"][0]["brokerName"] == "broker-a"  # kept; clients skip it for publishing


def test_group_queue_data_goes_when_its_last_broker_goes(group: RouteTable) -> None:
    for conn in (1, 2):
        group.drop_connection(conn)
    assert group.route_for("TopicA") is not None
    [last] = group.drop_connection(3)
    assert last.group_removed
    assert group.route_for("TopicA") is None and group.topic_queue_table == {}
    assert group.cluster_addr_table == {} and group.broker_addr_table == {}


def test_closed_connection_drops_only_brokers_that_registered_over_it(group: RouteTable) -> None:
    register(group, B, 1, conn=22)  # B reconnected; its old connection 2 closes later
    assert group.drop_connection(2) == []
    assert [d.addr for d in group.drop_connection(22)] == [B]


def test_drop_of_a_replaced_master_leaves_its_successor(group: RouteTable) -> None:
    register(group, B, 0, conn=2)
    [dropped] = group.drop_connection(1)
    assert dropped.addr == A and not dropped.was_in_route
    assert group.broker_addr_table["broker-a"].broker_addrs == {0: B, 2: C}


def test_unregister_removes_the_broker_and_a_stale_unregister_spares_the_successor(group: RouteTable) -> None:
    register(group, B, 0, conn=2)  # B is master now; A still believes it is id 0
    stale = group.unregister_broker(cluster="c1", broker_name="broker-a", broker_id=0, addr=A)
    assert not stale.was_in_route
    assert group.broker_addr_table["broker-a"].broker_addrs == {0: B, 2: C}
    group.unregister_broker(cluster="c1", broker_name="broker-a", broker_id=2, addr=C)
    last = group.unregister_broker(cluster="c1", broker_name="broker-a", broker_id=0, addr=B)
    assert last.group_removed and group.route_for("TopicA") is None


# ---------------------------------------------------------------- queries

def test_route_needs_queue_data_and_broker_data() -> None:
    table = RouteTable()
    assert table.route_for("nope") is None
    register(table, A, 0)
    del table.broker_addr_table["broker-a"]  # queue data without broker data: TOPIC_NOT_EXIST as in RocketMQ
    assert table.route_for("TopicA") is None


def test_cluster_info_topic_lists_and_write_perm() -> None:
    table = RouteTable()
    register(table, A, 0, cluster="c1")
    register(table, B, 0, name="broker-b", cluster="c2", topics=[TopicConfig("TopicC", 1, 1, 7)])
    info = table.cluster_info()
    assert info["clusterAddrTable"] == {"c1": ["broker-a"], "c2": ["broker-b"]}
    assert info["brokerAddrTable"]["broker-b"] == {"brokerAddrs": {0: B}, "brokerName": "broker-b", "cluster": "c2"}
    assert table.all_topics() == ["TopicA", "TopicB", "TopicC"]
    assert table.topics_by_cluster("c2") == ["TopicC"] and table.topics_by_cluster("nope") == []
    assert table.wipe_write_perm("broker-b") == 1
    assert table.topic_queue_table["TopicC"]["broker-b"].perm == 5
    assert table.add_write_perm("broker-b") == 1
    assert table.topic_queue_table["TopicC"]["broker-b"].perm == 6  # RocketMQ sets RW outright


def test_query_data_version_and_touch() -> None:
    table = RouteTable()
    register(table, A, 0, now=0.0)
    assert not table.topic_config_changed(A, DataVersion(100, 1)) and table.topic_config_changed(A, V2)
    assert table.topic_config_changed(B, V1)
    table.touch(A, 50.0)
    assert table.scan_expired(now=55.0, expiry=10.0) == []


# ---------------------------------------------------------------- JSON shapes

def test_bare_and_quoted_key_encodings() -> None:
    table = RouteTable()
    register(table, A, 0)
    register(table, "10.0.0.9:10911", 1)
    route = table.route_for("TopicA")
    bare = encode_body(route, quoted_keys=False).decode()
    assert '"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.9:10911"}' in bare
    with pytest.raises(ValueError):
        json.loads(bare)
    quoted = encode_body(route, quoted_keys=True).decode()
    assert '"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.9:10911"}' in quoted
    assert json.loads(quoted) == jsonbody.loads(bare)
    assert list(json.loads(quoted)) == ["brokerDatas", "filterServerTable", "queueDatas"]


def test_standard_form_escapes_non_ascii_like_browser_compatible() -> None:
    assert encode_body({"t": "é"}, quoted_keys=True) == b'{"t":"\\u00e9"}'
    assert encode_body({"t": "é"}, quoted_keys=False) == '{"t":"é"}'.encode()


def test_data_version_json_round_trip() -> None:
    assert DataVersion.from_json({"counter": 3, "timestamp": 7}).to_json() == {"counter": 3, "timestamp": 7}
    five = DataVersion.from_json({"counter": 3, "stateVersion": 2, "timestamp": 7})
    assert five.to_json() == {"counter": 3, "stateVersion": 2, "timestamp": 7}
    assert DataVersion(7, 3).same_as(DataVersion(7, 3, 0)) and not DataVersion(7, 3).same_as(DataVersion(7, 4))


def test_topic_config_accepts_old_spelling_and_names_bad_fields() -> None:
    old = TopicConfig.from_json("T", {"readQueueNums": "2", "topicSynFlag": 1}, "t")
    assert old == TopicConfig("T", 2, 16, 6, 1)
    with pytest.raises(ValueError, match="t.perm"):
        TopicConfig.from_json("T", {"perm": "rw"}, "t")


# ---------------------------------------------------------------- REGISTER_BROKER body decoding

def test_json_and_compressed_bodies_decode_alike() -> None:
    topics = {"TopicA": (4, 4, 6), "TopicB": (2, 1, 4)}
    plain = parse_register_body(register_body_json(topics, (9, 3)), compressed=False, legacy=False)
    packed = parse_register_body(register_body_compressed(topics, (9, 3)), compressed=True, legacy=False)
    assert plain == packed
    assert plain.data_version == DataVersion(9, 3)
    assert plain.topics == [TopicConfig("TopicA", 4, 4, 6), TopicConfig("TopicB", 2, 1, 4)]


def test_legacy_body_is_a_bare_topic_config_wrapper() -> None:
    body = json.dumps({"dataVersion": {"counter": 1, "timestamp": 2},
                       "topicConfigTable": {"T": {"topicName": "T", "readQueueNums": 1, "writeQueueNums": 1}}})
    parsed = parse_register_body(body.encode(), compressed=False, legacy=True)
    assert parsed.topics == [TopicConfig("T", 1, 1, 6)] and parsed.data_version == DataVersion(2, 1)


def test_empty_body_means_version_zero_and_no_topics() -> None:
    parsed = parse_register_body(b"", compressed=False, legacy=False)
    assert parsed.data_version == DataVersion(0, 0) and parsed.topics == []


@pytest.mark.parametrize(("body", "compressed", "field"), [
    (b"not json", False, "RegisterBrokerBody"),
    (b"[1, 2]", False, "expected a JSON object"),
    (b'{"topicConfigSerializeWrapper": []}', False, "topicConfigSerializeWrapper"),
    (b'{"topicConfigSerializeWrapper": {"topicConfigTable": {"T": {"readQueueNums": "x"}}}}', False,
     "topicConfigTable.T.readQueueNums"),
    (b'{"topicConfigSerializeWrapper": {"dataVersion": {"counter": true}}}', False, "dataVersion.counter"),
    (b"\x78\x9c garbage", True, "RegisterBrokerBody"),
    (register_body_compressed({"T": (1, 1, 6)})[:-6], True, "truncated inside filterServerList"),
], ids=["not-json", "array", "wrapper-type", "queue-nums-type", "counter-bool", "bad-zlib", "cut-zlib"])
def test_bad_bodies_are_refused_with_a_remark_naming_the_problem(body: bytes, compressed: bool, field: str) -> None:
    with pytest.raises(BadRequest, match=field.replace(".", r"\.")) as caught:
        parse_register_body(body, compressed=compressed, legacy=False)
    assert caught.value.remark.startswith("Failed to decode RegisterBrokerBody")


def test_truncated_compressed_content_is_refused() -> None:
    import struct
    import zlib

    body = zlib.compress(struct.pack(">i", 100) + b"{}")
    with pytest.raises(BadRequest, match="truncated inside dataVersion"):
        parse_register_body(body, compressed=True, legacy=False)
