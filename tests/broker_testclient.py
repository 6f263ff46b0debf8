"""A tiny blocking remoting client for broker tests, built only on the sans-IO codec.

It is deliberately independent of harness.remoting.client, so broker tests do not depend on the client
under test elsewhere. Requests can be pipelined (``start`` then ``wait``); server-initiated requests
(NOTIFY_CONSUMER_IDS_CHANGED) are collected in ``server_requests``.
"""
from __future__ import annotations

import itertools
import json
import socket
import time

from harness.remoting.codes import PULL_FLAG_SUBSCRIPTION, RequestCode
from harness.remoting.frame import FLAG_ONEWAY, SERIALIZE_JSON, FrameDecoder, RemotingCommand, encode_command
from harness.remoting.message import encode_properties

_opaques = itertools.count(1)


class BrokerTestClient:
    def __init__(self, addr: str, timeout: float = 10.0) -> None:
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.timeout = timeout
        self.decoder = FrameDecoder()
        self.responses: dict[int, RemotingCommand] = {}
        self.server_requests: list[RemotingCommand] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> BrokerTestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def start(self, code: int, ext: dict[str, object] | None = None, body: bytes = b"", oneway: bool = False,
              serialize_type: int = SERIALIZE_JSON, version: int = 409) -> int:
        cmd = RemotingCommand(code=code, opaque=next(_opaques), flag=FLAG_ONEWAY if oneway else 0,
                              version=version, ext_fields={k: _s(v) for k, v in (ext or {}).items()},
                              body=body, serialize_type=serialize_type)
        self.sock.sendall(encode_command(cmd))
        return cmd.opaque

    def wait(self, opaque: int, timeout: float | None = None) -> RemotingCommand:
        deadline = time.monotonic() + (timeout or self.timeout)
        while opaque not in self.responses:
            self._read_some(deadline)
        return self.responses.pop(opaque)

    def request(self, code: int, ext: dict[str, object] | None = None, body: bytes = b"",
                timeout: float | None = None, **kw: object) -> RemotingCommand:
        return self.wait(self.start(code, ext, body, **kw), timeout)  # type: ignore[arg-type]

    def wait_server_request(self, code: int, timeout: float = 5.0) -> RemotingCommand:
        deadline = time.monotonic() + timeout
        while True:
            for cmd in self.server_requests:
                if cmd.code == code:
                    self.server_requests.remove(cmd)
                    return cmd
            self._read_some(deadline)

    def _read_some(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no response in time")
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("connection closed by the broker")
        for cmd in self.decoder.feed(data):
            if cmd.is_response:
                self.responses[cmd.opaque] = cmd
            else:
                self.server_requests.append(cmd)

    # ------------------------------------------------------------------ helpers
    def send(self, topic: str, body: bytes, props: dict[str, str] | None = None, queue_id: int = 0,
             v2: bool = True, group: str = "pg", extra: dict[str, object] | None = None,
             code: int | None = None) -> RemotingCommand:
        return self.wait(self.start_send(topic, body, props, queue_id, v2, group, extra, code))

    def start_send(self, topic: str, body: bytes, props: dict[str, str] | None = None, queue_id: int = 0,
                   v2: bool = True, group: str = "pg", extra: dict[str, object] | None = None,
                   code: int | None = None) -> int:
        fields = send_fields(topic, props, queue_id, group)
        if v2:
            fields = {short: fields[long] for long, short in zip(_V1, "abcdefghijk")}
        fields.update(extra or {})
        if code is None:
            code = RequestCode.SEND_MESSAGE_V2 if v2 else RequestCode.SEND_MESSAGE
        return self.start(code, fields, body)

    def pull(self, group: str, topic: str, queue_id: int, offset: int, max_nums: int = 32,
             sys_flag: int = PULL_FLAG_SUBSCRIPTION, suspend_ms: int = 0, subscription: str = "*",
             commit_offset: int = 0, timeout: float | None = None) -> RemotingCommand:
        return self.wait(self.start_pull(group, topic, queue_id, offset, max_nums, sys_flag, suspend_ms,
                                         subscription, commit_offset), timeout)

    def start_pull(self, group: str, topic: str, queue_id: int, offset: int, max_nums: int = 32,
                   sys_flag: int = PULL_FLAG_SUBSCRIPTION, suspend_ms: int = 0, subscription: str = "*",
                   commit_offset: int = 0) -> int:
        return self.start(RequestCode.PULL_MESSAGE, {
            "consumerGroup": group, "topic": topic, "queueId": queue_id, "queueOffset": offset,
            "maxMsgNums": max_nums, "sysFlag": sys_flag, "commitOffset": commit_offset,
            "suspendTimeoutMillis": suspend_ms, "subscription": subscription, "subVersion": 0,
            "expressionType": "TAG"})

    def heartbeat(self, client_id: str, group: str, topics: dict[str, str],
                  producer_group: str | None = None) -> RemotingCommand:
        data = {"clientID": client_id,
                "producerDataSet": [{"groupName": producer_group}] if producer_group else [],
                "consumerDataSet": [{
                    "groupName": group, "consumeType": "CONSUME_ACTIVELY", "messageModel": "CLUSTERING",
                    "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "unitMode": False,
                    "subscriptionDataSet": [{"classFilterMode": False, "topic": t, "subString": s,
                                             "tagsSet": [] if s == "*" else s.split(" || "), "codeSet": [],
                                             "subVersion": 1, "expressionType": "TAG"}
                                            for t, s in topics.items()]}]}
        return self.request(RequestCode.HEART_BEAT, body=json.dumps(data).encode())


_V1 = ("producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId", "sysFlag",
       "bornTimestamp", "flag", "properties", "reconsumeTimes", "unitMode")


def send_fields(topic: str, props: dict[str, str] | None, queue_id: int, group: str = "pg") -> dict[str, object]:
    return {"producerGroup": group, "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": 4,
            "queueId": queue_id, "sysFlag": 0, "bornTimestamp": int(time.time() * 1000), "flag": 0,
            "properties": encode_properties(props or {}), "reconsumeTimes": 0, "unitMode": False}


def _s(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
