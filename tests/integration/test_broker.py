"""The broker as a real process, driven over real sockets with a tiny codec-based client."""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cluster.local.config import BrokerConfig, Timing, TopicSpec
from cluster.local.process import NodeProcess, kill_node, stop_node
from harness.remoting import jsonbody
from harness.remoting.codes import (
    PULL_FLAG_COMMIT_OFFSET, PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND, RequestCode, ResponseCode,
)
from harness.remoting.frame import SERIALIZE_ROCKETMQ, RemotingCommand, encode_command
from harness.remoting.message import (
    BatchItem, HostAddress, decode_stored_messages, encode_batch_body, offset_msg_id,
)
from tests.broker_testclient import BrokerTestClient, send_fields
from tests.helpers import broker_config, namesrv_config, start_node, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def start_broker(tmp: Path, reaper: list[NodeProcess], **kw: object) -> BrokerConfig:
    config = broker_config(tmp, kw.pop("namesrv_addrs", []), **kw)  # type: ignore[arg-type]
    reaper.append(start_node(config, tmp))
    return config


def restart(config: BrokerConfig, tmp: Path, reaper: list[NodeProcess]) -> None:
    reaper.append(start_node(config, tmp))


def topics_of(client: BrokerTestClient) -> dict[str, dict[str, object]]:
    reply = client.request(RequestCode.GET_ALL_TOPIC_CONFIG)
    assert reply.code == ResponseCode.SUCCESS
    return jsonbody.loads(reply.body)["topicConfigTable"]  # type: ignore[no-any-return]


def pull_all(client: BrokerTestClient, topic: str, queue_id: int, group: str = "g") -> list:  # type: ignore[type-arg]
    out, offset = [], 0
    while True:
        reply = client.pull(group, topic, queue_id, offset)
        if reply.code != ResponseCode.SUCCESS:
            return out
        out += decode_stored_messages(reply.body)
        offset = int(reply.ext_fields["nextBeginOffset"])


def test_send_v1_v2_batch_and_pull_back_byte_exact(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 4, 4),))
    with BrokerTestClient(config.listen_addr) as c:
        body1, body2 = os.urandom(1024), bytes(range(256))
        r1 = c.send("T", body1, {"TAGS": "A", "KEYS": "k1 k2", "UNIQ_KEY": "U1", "WAIT": "true"}, v2=True)
        r2 = c.send("T", body2, {"UNIQ_KEY": "U2"}, v2=False)
        items = [BatchItem(b"b%d" % i, {"UNIQ_KEY": f"B{i}", "TAGS": "Z"}) for i in range(3)]
        fields = {short: v for short, v in zip("abcdefghijk", send_fields("T", {"WAIT": "true"}, 0).values())}
        r3 = c.request(RequestCode.SEND_BATCH_MESSAGE, {**fields, "m": "true"}, encode_batch_body(items))
        assert [r.code for r in (r1, r2, r3)] == [ResponseCode.SUCCESS] * 3
        assert [r.ext_fields["queueOffset"] for r in (r1, r2, r3)] == ["0", "1", "2"]
        assert r1.ext_fields["MSG_REGION"] == "DefaultRegion" and r1.ext_fields["TRACE_ON"] == "true"
        assert len(r3.ext_fields["msgId"].split(",")) == 3
        msgs = pull_all(c, "T", 0)
        local = c.sock.getsockname()
    assert [m.body for m in msgs] == [body1, body2, b"b0", b"b1", b"b2"]
    assert msgs[0].properties == {"TAGS": "A", "KEYS": "k1 k2", "UNIQ_KEY": "U1", "WAIT": "true",
                                  "CLUSTER": "DefaultCluster"}
    assert msgs[1].properties == {"UNIQ_KEY": "U2", "CLUSTER": "DefaultCluster"}
    assert msgs[3].properties == {"UNIQ_KEY": "B1", "TAGS": "Z", "WAIT": "true", "CLUSTER": "DefaultCluster"}
    assert [m.queue_offset for m in msgs] == [0, 1, 2, 3, 4]
    ids = [r1.ext_fields["msgId"], r2.ext_fields["msgId"], *r3.ext_fields["msgId"].split(",")]
    assert [m.offset_msg_id for m in msgs] == ids
    assert msgs[0].offset_msg_id == offset_msg_id(HostAddress.parse(config.store_host), msgs[0].commit_log_offset)
    assert str(msgs[0].born_host) == f"{local[0]}:{local[1]}" and str(msgs[0].store_host) == config.store_host
    assert msgs[0].store_timestamp >= msgs[0].born_timestamp - 1000


def test_auto_create_queue_rules_and_binary_headers(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper)
    with BrokerTestClient(config.listen_addr) as c:
        assert topics_of(c)["TBW102"]["perm"] == 7 and topics_of(c)["TBW102"]["writeQueueNums"] == 8
        assert c.send("Fresh", b"x", queue_id=1).code == ResponseCode.SUCCESS
        fresh = topics_of(c)["Fresh"]
        assert (fresh["readQueueNums"], fresh["writeQueueNums"], fresh["perm"]) == (4, 4, 6)
        bad = c.send("Fresh", b"x", queue_id=4)
        assert bad.code == ResponseCode.SYSTEM_ERROR and "queueId[4] is illegal" in (bad.remark or "")
        assert {int(c.send("Fresh", b"x", queue_id=-1).ext_fields["queueId"]) for _ in range(40)} <= {0, 1, 2, 3}
        assert c.send("bad topic!", b"x").code == ResponseCode.SYSTEM_ERROR
        total = 0
        for queue_id in range(4):
            binary = c.wait(c.start(RequestCode.GET_MAX_OFFSET, {"topic": "Fresh", "queueId": queue_id},
                                    serialize_type=SERIALIZE_ROCKETMQ))
            assert binary.serialize_type == SERIALIZE_ROCKETMQ
            total += int(binary.ext_fields["offset"])
        assert total == 41


def test_no_auto_create_means_topic_not_exist(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, auto_create_topic=False)
    with BrokerTestClient(config.listen_addr) as c:
        assert "TBW102" not in topics_of(c)
        assert c.send("Nope", b"x").code == ResponseCode.TOPIC_NOT_EXIST
        assert c.pull("g", "Nope", 0, 0).code == ResponseCode.TOPIC_NOT_EXIST


def test_pull_statuses_and_offset_queries(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 2, 2),))
    with BrokerTestClient(config.listen_addr) as c:
        empty = c.pull("g", "T", 0, 0)
        assert empty.code == ResponseCode.PULL_NOT_FOUND
        assert set(empty.ext_fields) >= {"suggestWhichBrokerId", "nextBeginOffset", "minOffset", "maxOffset"}
        assert c.pull("g", "T", 0, 5).code == ResponseCode.PULL_OFFSET_MOVED
        before = int(time.time() * 1000)
        for i in range(3):
            c.send("T", b"m%d" % i, {"TAGS": "A" if i != 1 else "B"})
        assert c.pull("g", "T", 0, 3).remark == "OFFSET_OVERFLOW_ONE"
        moved = c.pull("g", "T", 0, 7)
        assert moved.code == ResponseCode.PULL_OFFSET_MOVED and moved.remark == "OFFSET_OVERFLOW_BADLY"
        only_b = c.pull("g", "T", 0, 0, subscription="B")
        assert [m.body for m in decode_stored_messages(only_b.body)] == [b"m1"]
        none = c.pull("g", "T", 0, 2, subscription="C")
        assert none.code == ResponseCode.PULL_RETRY_IMMEDIATELY and none.ext_fields["nextBeginOffset"] == "3"
        assert c.pull("g", "T", 2, 0).code == ResponseCode.SYSTEM_ERROR  # queueId >= readQueueNums

        def offset(code: int, **ext: object) -> str:
            reply = c.request(code, {"topic": "T", "queueId": 0, **ext})
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            return next(iter(reply.ext_fields.values()))

        assert offset(RequestCode.GET_MAX_OFFSET) == "3" and offset(RequestCode.GET_MIN_OFFSET) == "0"
        assert offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, timestamp=before - 10_000) == "0"
        assert offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, timestamp=int(time.time() * 1000) + 10_000) == "3"
        assert int(offset(RequestCode.GET_EARLIEST_MSG_STORETIME)) >= before
        first = decode_stored_messages(c.pull("g", "T", 0, 0).body)[0]
        viewed = c.request(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": first.commit_log_offset})
        assert decode_stored_messages(viewed.body)[0].body == b"m0"
        assert c.request(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": 3}).code == ResponseCode.SYSTEM_ERROR


def test_long_polling_wakes_on_arrival_and_expires(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 2, 2),))
    flags = PULL_FLAG_SUBSCRIPTION | PULL_FLAG_SUSPEND
    with BrokerTestClient(config.listen_addr) as consumer, BrokerTestClient(config.listen_addr) as producer:
        started = time.monotonic()
        expired = consumer.pull("g", "T", 0, 0, sys_flag=flags, suspend_ms=600)
        assert expired.code == ResponseCode.PULL_NOT_FOUND and time.monotonic() - started >= 0.5
        held = consumer.start_pull("g", "T", 0, 0, sys_flag=flags, suspend_ms=20_000, subscription="A")
        other = consumer.start_pull("g", "T", 1, 0, sys_flag=flags, suspend_ms=20_000)
        with pytest.raises(TimeoutError):  # parked: no answer while nothing has arrived
            consumer.wait(held, timeout=0.3)
        producer.send("T", b"not-a", {"TAGS": "B"}, queue_id=0)  # filtered out: stays held
        with pytest.raises(TimeoutError):
            consumer.wait(held, timeout=0.3)
        producer.send("T", b"yes", {"TAGS": "A"}, queue_id=0)
        started = time.monotonic()
        woke = consumer.wait(held, timeout=5)
        assert woke.code == ResponseCode.SUCCESS and time.monotonic() - started < 3
        assert [m.body for m in decode_stored_messages(woke.body)] == [b"yes"]
        producer.send("T", b"q1", queue_id=1)
        assert decode_stored_messages(consumer.wait(other, timeout=5).body)[0].body == b"q1"


def test_consumer_offsets_and_commit_flag(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 2, 2),))
    with BrokerTestClient(config.listen_addr) as c:
        query = {"consumerGroup": "g", "topic": "T", "queueId": 1}
        assert c.request(RequestCode.QUERY_CONSUMER_OFFSET, query).ext_fields["offset"] == "0"
        strict = c.request(RequestCode.QUERY_CONSUMER_OFFSET, {**query, "setZeroIfNotFound": "false"})
        assert strict.code == ResponseCode.QUERY_NOT_FOUND
        c.start(RequestCode.UPDATE_CONSUMER_OFFSET, {**query, "commitOffset": 7}, oneway=True)
        wait_until(lambda: c.request(RequestCode.QUERY_CONSUMER_OFFSET, query).ext_fields.get("offset") == "7",
                   message="oneway offset update")
        c.pull("g", "T", 0, 0, sys_flag=PULL_FLAG_SUBSCRIPTION | PULL_FLAG_COMMIT_OFFSET, commit_offset=11)
        reply = c.request(RequestCode.QUERY_CONSUMER_OFFSET, {**query, "queueId": 0})
        assert reply.ext_fields["offset"] == "11"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_restart_keeps_acknowledged_messages_and_offsets(workdir: Path, node_reaper: list[NodeProcess],
                                                         how: str) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 4, 4),))
    sent: dict[int, list[bytes]] = {q: [] for q in range(4)}
    with BrokerTestClient(config.listen_addr) as c:
        opaques = []
        for i in range(2000):
            body = b"%d:" % i + os.urandom(64)
            opaques.append((i % 4, body, c.start_send("T", body, {"UNIQ_KEY": str(i)}, queue_id=i % 4)))
        for queue_id, body, opaque in opaques:
            assert c.wait(opaque).code == ResponseCode.SUCCESS
            sent[queue_id].append(body)
        assert c.request(RequestCode.UPDATE_CONSUMER_OFFSET, {"consumerGroup": "g", "topic": "T", "queueId": 2,
                                                              "commitOffset": 123}).code == ResponseCode.SUCCESS
    node = node_reaper[-1]
    if how == "SIGKILL":
        kill_node(node)
    else:
        stop_node(node)
    restart(config, workdir, node_reaper)
    with BrokerTestClient(config.listen_addr) as c:
        for queue_id, bodies in sent.items():
            assert [m.body for m in pull_all(c, "T", queue_id)] == bodies
        reply = c.request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": "g", "topic": "T", "queueId": 2})
        assert reply.ext_fields["offset"] == "123"
        assert c.send("T", b"after", queue_id=0).ext_fields["queueOffset"] == "500"


def test_heartbeat_groups_notify_and_subscriptions(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 2, 2),))
    with BrokerTestClient(config.listen_addr) as a, BrokerTestClient(config.listen_addr) as b:
        a.send("T", b"tagged-a", {"TAGS": "A"})
        a.send("T", b"tagged-b", {"TAGS": "B"})
        no_sub = a.pull("g", "T", 0, 0, sys_flag=0)
        assert no_sub.code == ResponseCode.SUBSCRIPTION_NOT_EXIST
        assert a.heartbeat("10.0.0.1@a", "g", {"T": "B"}).code == ResponseCode.SUCCESS
        assert "%RETRY%g" in topics_of(a)
        assert [m.body for m in decode_stored_messages(a.pull("g", "T", 0, 0, sys_flag=0).body)] == [b"tagged-b"]
        assert a.pull("g", "Other", 0, 0, sys_flag=0).code == ResponseCode.TOPIC_NOT_EXIST
        a.wait_server_request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED)  # its own arrival: every member hears
        b.heartbeat("10.0.0.2@b", "g", {"T": "B"})
        assert a.wait_server_request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED).ext_fields["consumerGroup"] == "g"
        assert a.heartbeat("10.0.0.1@a", "g", {"T": "B"}).code == ResponseCode.SUCCESS  # no change: no notice
        listed = a.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "g"})
        assert json.loads(listed.body) == {"consumerIdList": ["10.0.0.1@a", "10.0.0.2@b"]}
        assert not [r for r in a.server_requests if r.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED]
        b.close()
        a.wait_server_request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED)
        listed = a.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "g"})
        assert json.loads(listed.body) == {"consumerIdList": ["10.0.0.1@a"]}
        a.request(RequestCode.UNREGISTER_CLIENT, {"clientID": "10.0.0.1@a", "consumerGroup": "g"})
        gone = a.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "g"})
        assert gone.code == ResponseCode.SYSTEM_ERROR and gone.remark == "no consumer for this group, g"
        assert a.request(RequestCode.HEART_BEAT, body=b"{not json").code == ResponseCode.SYSTEM_ERROR
        assert a.heartbeat("10.0.0.1@a", "../escape", {"T": "*"}).code == ResponseCode.SYSTEM_ERROR


def test_send_back_to_retry_then_dlq(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 1, 1),))
    with BrokerTestClient(config.listen_addr) as c:
        c.send("T", b"payload", {"TAGS": "A", "UNIQ_KEY": "U"})
        original = decode_stored_messages(c.pull("g", "T", 0, 0).body)[0]
        back = {"offset": original.commit_log_offset, "group": "g", "delayLevel": 0,
                "originMsgId": original.offset_msg_id, "originTopic": "T", "unitMode": "false",
                "maxReconsumeTimes": 2}
        assert c.request(RequestCode.CONSUMER_SEND_MSG_BACK, back).code == ResponseCode.SUCCESS
        retry = decode_stored_messages(c.pull("g", "%RETRY%g", 0, 0).body)[0]
        assert retry.body == b"payload" and retry.reconsume_times == 1
        assert retry.properties["RETRY_TOPIC"] == "T" and retry.properties["RECONSUME_TIME"] == "1"
        assert retry.properties["ORIGIN_MESSAGE_ID"] == original.offset_msg_id
        c.request(RequestCode.CONSUMER_SEND_MSG_BACK, {**back, "offset": retry.commit_log_offset})
        second = decode_stored_messages(c.pull("g", "%RETRY%g", 0, 1).body)[0]
        assert second.reconsume_times == 2
        c.request(RequestCode.CONSUMER_SEND_MSG_BACK, {**back, "offset": second.commit_log_offset})
        dead = decode_stored_messages(c.pull("g", "%DLQ%g", 0, 0).body)[0]
        assert dead.body == b"payload" and dead.properties["RETRY_TOPIC"] == "T"
        missing = c.request(RequestCode.CONSUMER_SEND_MSG_BACK, {**back, "offset": 1})
        assert missing.code == ResponseCode.SYSTEM_ERROR


def test_admin_topic_and_runtime_info(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper)
    with BrokerTestClient(config.listen_addr) as c:
        create = {"topic": "Made", "defaultTopic": "TBW102", "readQueueNums": 3, "writeQueueNums": 2,
                  "perm": 6, "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": "false"}
        assert c.request(RequestCode.UPDATE_AND_CREATE_TOPIC, create).code == ResponseCode.SUCCESS
        made = topics_of(c)["Made"]
        assert (made["readQueueNums"], made["writeQueueNums"]) == (3, 2)
        clash = c.request(RequestCode.UPDATE_AND_CREATE_TOPIC, {**create, "topic": "DefaultCluster"})
        assert clash.code == ResponseCode.SYSTEM_ERROR
        c.send("Made", b"x")
        table = jsonbody.loads(c.request(RequestCode.GET_BROKER_RUNTIME_INFO).body)["table"]
        for key in ("brokerVersionDesc", "brokerVersion", "msgPutTotalTodayNow", "msgGetTotalTodayNow", "putTps",
                    "getTransferedTps", "commitLogMaxOffset", "commitLogMinOffset", "bootTimestamp", "runtime",
                    "pageCacheLockTimeMills", "earliestMessageTimeStamp", "commitLogDiskRatio",
                    "sendThreadPoolQueueSize", "pullThreadPoolQueueSize"):
            assert isinstance(table[key], str), key
        assert table["msgPutTotalTodayNow"] == "1" and float(table["putTps"].split()[0]) >= 0
        assert int(table["commitLogMaxOffset"]) > 0 and int(table["earliestMessageTimeStamp"]) > 0


def test_malformed_requests_get_precise_errors(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 1, 1),))
    with BrokerTestClient(config.listen_addr) as c:
        fields = {short: v for short, v in zip("abcdefghijk", send_fields("T", {}, 0).values())}
        for missing in "abcdefgh":
            reply = c.request(RequestCode.SEND_MESSAGE_V2, {k: v for k, v in fields.items() if k != missing}, b"x")
            assert reply.code == ResponseCode.SYSTEM_ERROR and f"<{missing}>" in (reply.remark or ""), missing
        garbled = c.request(RequestCode.SEND_MESSAGE_V2, {**fields, "e": "zero"}, b"x")
        assert "<e> (queueId) is not a number" in (garbled.remark or "")
        v1 = c.request(RequestCode.SEND_MESSAGE, {"topic": "T"}, b"x")
        assert "<producerGroup>" in (v1.remark or "")
        pull = c.request(RequestCode.PULL_MESSAGE, {"consumerGroup": "g", "topic": "T"})
        assert "<queueId>" in (pull.remark or "")
        batch = c.request(RequestCode.SEND_BATCH_MESSAGE, {**fields, "m": "true"}, b"\x00\x00\x00\x30garbage")
        assert batch.code == ResponseCode.MESSAGE_ILLEGAL and "offset 0" in (batch.remark or "")
        huge = c.request(RequestCode.SEND_MESSAGE_V2, fields, b"x" * (4 * 1024 * 1024 + 1))
        assert huge.code == ResponseCode.MESSAGE_ILLEGAL
        props = c.request(RequestCode.SEND_MESSAGE_V2, {**fields, "i": "K\x01" + "v" * 40_000}, b"x")
        assert props.code == ResponseCode.MESSAGE_ILLEGAL
        unknown = c.request(9999)
        assert unknown.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
        assert c.send("T", b"still fine").code == ResponseCode.SUCCESS


def _raw(addr: str, data: bytes) -> bytes:
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_garbage_and_broken_frames_do_not_take_it_down(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    config = start_broker(workdir, node_reaper, topics=(TopicSpec("T", 1, 1),))
    good = encode_command(RemotingCommand(code=RequestCode.GET_MAX_OFFSET, opaque=5,
                                          ext_fields={"topic": "T", "queueId": "0"}))
    bad_inputs = [
        os.urandom(3000),
        b"\x7f\xff\xff\xff" + b"x" * 100,                          # oversize frame length
        struct.pack(">ii", 8, 0x00FFFFFF) + b"abcd",                # header longer than the frame
        struct.pack(">ii", 12, 8) + b"{not json",                   # garbled JSON header
        struct.pack(">ii", 12, 0x01000008) + b"\x00\x01",           # truncated binary header
        good[:10],                                                  # truncated frame, then EOF
        struct.pack(">ii", 6, 2) + b"[]",                           # JSON header that is not an object
    ]
    for data in bad_inputs:
        _raw(config.listen_addr, data)
    answer = _raw(config.listen_addr, good + os.urandom(64))       # a good request before garbage is answered
    assert answer and struct.unpack(">i", answer[:4])[0] == len(answer) - 4
    rng = __import__("random").Random(7)
    for _ in range(30):  # fuzzed fields in otherwise valid frames
        ext = {k: rng.choice(["", "-1", "9" * 30, "\u00e9", "true", "null"]) for k in
               rng.sample(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "topic", "queueId", "offset",
                           "consumerGroup", "queueOffset", "maxMsgNums", "sysFlag", "commitOffset"], 8)}
        code = rng.choice([10, 11, 14, 15, 29, 30, 31, 32, 33, 34, 35, 36, 38, 310, 320, 17])
        _raw(config.listen_addr, encode_command(RemotingCommand(code=code, opaque=1, ext_fields=ext,
                                                                body=os.urandom(rng.randint(0, 200)))))
    assert node_reaper[-1].is_alive()
    with BrokerTestClient(config.listen_addr) as second:
        assert second.send("T", b"served").code == ResponseCode.SUCCESS


def test_registers_with_namesrv_and_unregisters_on_stop(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    ns = namesrv_config(workdir)
    node_reaper.append(start_node(ns, workdir))
    config = start_broker(workdir, node_reaper, namesrv_addrs=[ns.listen_addr], advertised_addr="127.0.0.1:1")
    broker_node = node_reaper[-1]

    def route(topic: str) -> dict | None:  # type: ignore[type-arg]
        with BrokerTestClient(ns.listen_addr) as c:
            reply = c.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
            return jsonbody.loads(reply.body) if reply.code == ResponseCode.SUCCESS else None

    tbw = wait_until(lambda: route("TBW102"), message="broker registered")
    assert tbw["brokerDatas"][0]["brokerAddrs"] == {"0": "127.0.0.1:1"}
    assert tbw["queueDatas"][0]["perm"] == 7
    with BrokerTestClient(config.listen_addr) as c:
        create = {"topic": "New", "defaultTopic": "TBW102", "readQueueNums": 2, "writeQueueNums": 2, "perm": 6,
                  "topicFilterType": "SINGLE_TAG"}
        c.request(RequestCode.UPDATE_AND_CREATE_TOPIC, create)
    started = time.monotonic()
    new = wait_until(lambda: route("New"), timeout=10, message="new topic registered at once")
    assert new["queueDatas"][0]["writeQueueNums"] == 2 and time.monotonic() - started < 10
    stop_node(broker_node)
    wait_until(lambda: route("TBW102") is None, timeout=10, message="broker unregistered")


def test_registration_survives_a_namesrv_restart(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    fast = Timing().scaled(0.1)
    ns = namesrv_config(workdir, timing=fast)
    node_reaper.append(start_node(ns, workdir))
    start_broker(workdir, node_reaper, namesrv_addrs=[ns.listen_addr, "127.0.0.1:1"], timing=fast)

    def registered() -> bool:
        with BrokerTestClient(ns.listen_addr) as c:
            return c.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}).code == ResponseCode.SUCCESS

    wait_until(registered, message="registered despite one unreachable namesrv")
    ns_node = node_reaper[0]
    os.kill(ns_node.pid, signal.SIGKILL)
    wait_until(lambda: not ns_node.is_alive(), message="namesrv gone")
    node_reaper.append(start_node(ns, workdir))
    wait_until(registered, timeout=15, message="re-registered with the restarted namesrv")


def test_silent_clients_expire(workdir: Path, node_reaper: list[NodeProcess]) -> None:
    timing = replace(Timing(), channel_idle_timeout=1.0)
    config = start_broker(workdir, node_reaper, timing=timing, topics=(TopicSpec("T", 1, 1),))
    with BrokerTestClient(config.listen_addr) as silent, BrokerTestClient(config.listen_addr) as observer:
        assert silent.heartbeat("10.0.0.9@silent", "g", {"T": "*"}).code == ResponseCode.SUCCESS
        group = {"consumerGroup": "g"}
        assert observer.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, group).code == ResponseCode.SUCCESS
        wait_until(lambda: observer.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, group).code
                   == ResponseCode.SYSTEM_ERROR, timeout=10, message="silent consumer expired")
