"""Request builders and response parsers of the MQ client (sans-IO)."""
from __future__ import annotations

import json
import re

import pytest

from harness.errors import ResponseError
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.commands import (ConsumerRegistration, Message, UniqIds, batch_request, heartbeat_body,
                                       message_properties, parse_pull_response, parse_send_response, parse_tags,
                                       pull_request, send_request)
from harness.remoting.client import encode_frame
from harness.remoting.frame import FLAG_RESPONSE, FrameError, RemotingCommand, decode_command
from harness.remoting.message import (HostAddress, MessageExt, decode_batch_body, decode_properties,
                                      encode_stored_message, java_string_hash)
from harness.remoting.route import MessageQueue

MQ = MessageQueue("T", "broker-a", 3)


def response(code: int, body: bytes = b"", **ext: object) -> RemotingCommand:
    return RemotingCommand(code=code, flag=FLAG_RESPONSE, ext_fields={k: str(v) for k, v in ext.items()},
                           body=body, remark="why")


def test_uniq_ids_are_32_hex_chars_and_distinct() -> None:
    ids = UniqIds("10.1.2.3")
    keys = [ids.next() for _ in range(1000)]
    assert len(set(keys)) == 1000
    assert all(re.fullmatch(r"[0-9A-F]{32}", k) for k in keys)
    assert keys[0].startswith("0A010203")


def test_properties_always_carry_wait_and_uniq_key_plus_tags_and_keys() -> None:
    assert decode_properties(message_properties(Message("T", b"x"), "K1")) == {"WAIT": "true", "UNIQ_KEY": "K1"}
    props = decode_properties(message_properties(Message("T", b"x", tags="TagA", keys=("k1", "k2"),
                                                         properties={"mine": "v"}), "K2"))
    assert props == {"mine": "v", "TAGS": "TagA", "KEYS": "k1 k2", "WAIT": "true", "UNIQ_KEY": "K2"}


def on_the_wire(cmd: RemotingCommand) -> RemotingCommand:
    cmd.opaque, cmd.flag = 77, 2
    frame = encode_frame(cmd)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    return decode_command(frame[4:])


def test_send_request_has_every_v2_field_as_a_string() -> None:
    cmd = on_the_wire(send_request("grp", Message("T", b"body", flag=5), MQ, "P"))
    assert cmd.code == RequestCode.SEND_MESSAGE_V2 and cmd.body == b"body"
    assert (cmd.opaque, cmd.flag, cmd.language, cmd.version) == (77, 2, "PYTHON", 409)
    ext = cmd.ext_fields
    assert {k: ext[k] for k in "abcdefhijkmn"} == {"a": "grp", "b": "T", "c": "TBW102", "d": "4", "e": "3",
                                                    "f": "0", "h": "5", "i": "P", "j": "0", "k": "false",
                                                    "m": "false", "n": "broker-a"}
    assert ext["g"].isdigit() and "l" not in ext


def test_an_oversize_send_is_refused_before_it_reaches_the_wire() -> None:
    with pytest.raises(FrameError):
        encode_frame(send_request("g", Message("T", bytes(16 * 1024 * 1024)), MQ, "P"))


def test_retry_topic_sends_carry_reconsume_counts() -> None:
    msg = Message("%RETRY%g", b"x", properties={"RECONSUME_TIME": "2", "MAX_RECONSUME_TIMES": "5"})
    ext = on_the_wire(send_request("grp", msg, MessageQueue("%RETRY%g", "b", 0), "P")).ext_fields
    assert (ext["j"], ext["l"]) == ("2", "5")


def test_pre_rendered_header_escapes_control_and_non_ascii_characters() -> None:
    props = message_properties(Message("T", b"x", tags='t"\\', properties={"k": "värde ✓"}), "K")
    cmd = on_the_wire(send_request('g"rp', Message("Tö", b"x"), MessageQueue("Tö", "b\\n", 0), props))
    assert (cmd.ext_fields["a"], cmd.ext_fields["b"], cmd.ext_fields["n"]) == ('g"rp', "Tö", "b\\n")
    assert decode_properties(cmd.ext_fields["i"]) == {"k": "värde ✓", "TAGS": 't"\\', "WAIT": "true",
                                                      "UNIQ_KEY": "K"}


def test_batch_request_gives_each_message_its_own_uniq_key() -> None:
    msgs = [Message("T", b"one", tags="A"), Message("T", b"two")]
    cmd = on_the_wire(batch_request("grp", msgs, MQ, ["K1", "K2"]))
    assert cmd.code == RequestCode.SEND_BATCH_MESSAGE and cmd.ext_fields["m"] == "true"
    items = decode_batch_body(cmd.body)
    assert [i.body for i in items] == [b"one", b"two"]
    assert [i.properties["UNIQ_KEY"] for i in items] == ["K1", "K2"]
    assert items[0].properties["TAGS"] == "A"


@pytest.mark.parametrize(("code", "status"), [(0, "SEND_OK"), (10, "FLUSH_DISK_TIMEOUT"),
                                              (11, "SLAVE_NOT_AVAILABLE"), (12, "FLUSH_SLAVE_TIMEOUT")])
def test_degraded_send_codes_are_results(code: int, status: str) -> None:
    result = parse_send_response(response(code, msgId="OFFID", queueId=1, queueOffset=42), MQ, "UNIQ", "addr")
    assert (result.status, result.msg_id, result.offset_msg_id) == (status, "UNIQ", "OFFID")
    assert (result.queue, result.queue_offset, result.broker_addr) == (MessageQueue("T", "broker-a", 1), 42, "addr")


def test_other_send_codes_raise_with_code_and_remark() -> None:
    with pytest.raises(ResponseError) as info:
        parse_send_response(response(ResponseCode.SERVICE_NOT_AVAILABLE), MQ, "U", "addr")
    assert (info.value.code, info.value.remark, info.value.addr) == (14, "why", "addr")


def test_pull_request_flags() -> None:
    ext = pull_request("g", MQ, 7, 32, "*", 15000, 5, 123).ext_fields
    assert ext["sysFlag"] == str(1 | 2 | 4) and ext["commitOffset"] == "5" and ext["expressionType"] == "TAG"
    assert pull_request("g", MQ, 7, 32, "*", 0, None, 123).ext_fields["sysFlag"] == "4"


def stored(offset: int, tags: str | None) -> bytes:
    props = {"UNIQ_KEY": f"U{offset}"} | ({"TAGS": tags} if tags else {})
    return encode_stored_message(MessageExt("T", f"m{offset}".encode(), props, queue_id=3, queue_offset=offset,
                                            store_host=HostAddress("127.0.0.1", 10911)))


def test_pull_found_decodes_filters_tags_and_adds_offset_properties() -> None:
    body = stored(0, "A") + stored(1, "B") + stored(2, None)
    resp = response(0, body, nextBeginOffset=3, minOffset=0, maxOffset=3, suggestWhichBrokerId=1)
    everything = parse_pull_response(resp, "*", "addr")
    assert [m.queue_offset for m in everything.messages] == [0, 1, 2]
    assert (everything.status, everything.next_begin_offset, everything.suggest_which_broker_id) == ("FOUND", 3, 1)
    assert everything.messages[0].properties["MAX_OFFSET"] == "3"
    only_a = parse_pull_response(resp, "A || C", "addr")
    assert [m.queue_offset for m in only_a.messages] == [0]


@pytest.mark.parametrize(("code", "status"), [(19, "NO_NEW_MSG"), (20, "NO_MATCHED_MSG"), (21, "OFFSET_ILLEGAL")])
def test_pull_statuses(code: int, status: str) -> None:
    result = parse_pull_response(response(code, nextBeginOffset=9, minOffset=1, maxOffset=9,
                                          suggestWhichBrokerId=0), "*", "a")
    assert (result.status, result.next_begin_offset, result.min_offset, result.messages) == (status, 9, 1, [])


def test_pull_error_codes_raise() -> None:
    with pytest.raises(ResponseError):
        parse_pull_response(response(ResponseCode.SUBSCRIPTION_NOT_EXIST), "*", "a")


def test_tag_expressions() -> None:
    assert parse_tags("*") == frozenset() and parse_tags("") == frozenset()
    assert parse_tags("A || B ||") == {"A", "B"}


def test_heartbeat_body_shape() -> None:
    reg = ConsumerRegistration("g", {"T": "A || B", "U": "*"}, "CONSUME_FROM_FIRST_OFFSET", sub_version=7)
    data = json.loads(heartbeat_body("1.2.3.4@9#1", "pg", [reg]))
    assert data["clientID"] == "1.2.3.4@9#1"
    assert [p["groupName"] for p in data["producerDataSet"]] == ["pg", "CLIENT_INNER_PRODUCER"]
    consumer = data["consumerDataSet"][0]
    assert (consumer["consumeType"], consumer["messageModel"]) == ("CONSUME_ACTIVELY", "CLUSTERING")
    sub_t = consumer["subscriptionDataSet"][0]
    assert sub_t["tagsSet"] == ["A", "B"] and sub_t["codeSet"] == [java_string_hash("A"), java_string_hash("B")]
    assert consumer["subscriptionDataSet"][1]["tagsSet"] == []
