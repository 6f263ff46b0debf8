"""A tiny blocking remoting client for tests: one socket, one request at a time, built on harness.remoting.frame.

Not the product client (harness/remoting/client.py): it exists so node tests can speak the wire protocol,
including deliberately broken frames, without depending on it. Also builds REGISTER_BROKER requests the way a
Java broker does (JSON or zlib body, bodyCrc32).
"""
from __future__ import annotations

import itertools
import json
import socket
import struct
import time
import zlib
from collections.abc import Mapping
from types import TracebackType

from harness.remoting.codes import VERSION_V4_9_8, RequestCode
from harness.remoting.frame import FLAG_ONEWAY, FrameDecoder, RemotingCommand, encode_command, stringify

_opaques = itertools.count(1)


class RemotingConn:
    """A blocking connection; ``call`` matches the response by opaque and skips anything else."""

    def __init__(self, addr: str, timeout: float = 5.0) -> None:
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._decoder = FrameDecoder()
        self._received: list[RemotingCommand] = []

    def send(self, cmd: RemotingCommand) -> None:
        self.sock.sendall(encode_command(cmd))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, cmd: RemotingCommand, timeout: float = 5.0) -> RemotingCommand:
        cmd.opaque = next(_opaques)
        self.send(cmd)
        return self.response_to(cmd.opaque, timeout)

    def oneway(self, cmd: RemotingCommand) -> None:
        cmd.opaque, cmd.flag = next(_opaques), cmd.flag | FLAG_ONEWAY
        self.send(cmd)

    def response_to(self, opaque: int, timeout: float) -> RemotingCommand:
        deadline = time.monotonic() + timeout
        while True:
            for cmd in self._received:
                if cmd.is_response and cmd.opaque == opaque:
                    self._received.remove(cmd)
                    return cmd
            if not self._read(deadline):
                raise ConnectionError(f"connection closed before the response to opaque {opaque}")

    @property
    def unmatched(self) -> list[RemotingCommand]:
        """Commands received but not yet claimed by a call (e.g. an unexpected reply to a oneway request)."""
        return list(self._received)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the server has closed this connection; False if it is still open after ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while self._read(deadline):
                pass
        except TimeoutError:
            return False
        return True

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no response in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        except socket.timeout:
            raise TimeoutError("no response in time") from None
        if not data:
            return False
        self._received.extend(self._decoder.feed(data))
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RemotingConn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def call(addr: str, cmd: RemotingCommand, timeout: float = 5.0) -> RemotingCommand:
    """One request on a fresh connection."""
    with RemotingConn(addr, timeout) as conn:
        return conn.call(cmd, timeout)


def request(code: int, ext: Mapping[str, object] | None = None, body: bytes = b"",
            version: int = VERSION_V4_9_8) -> RemotingCommand:
    return RemotingCommand(code=int(code), version=version, ext_fields=stringify(dict(ext or {})), body=body)


# ---------------------------------------------------------------- REGISTER_BROKER as a broker sends it

Topics = Mapping[str, tuple[int, int, int]]
"""topic -> (readQueueNums, writeQueueNums, perm)"""


def register_body_json(topics: Topics, version: tuple[int, int] = (1, 0)) -> bytes:
    table = {name: {"order": False, "perm": perm, "readQueueNums": r, "topicFilterType": "SINGLE_TAG",
                    "topicName": name, "topicSysFlag": 0, "writeQueueNums": w}
             for name, (r, w, perm) in topics.items()}
    wrapper = {"dataVersion": {"counter": version[1], "timestamp": version[0]}, "topicConfigTable": table}
    return json.dumps({"filterServerList": [], "topicConfigSerializeWrapper": wrapper}).encode()


def register_body_compressed(topics: Topics, version: tuple[int, int] = (1, 0)) -> bytes:
    """RegisterBrokerBody.encode(true): length-prefixed pieces inside one zlib stream."""
    def piece(data: bytes) -> bytes:
        return struct.pack(">i", len(data)) + data

    parts = [piece(json.dumps({"counter": version[1], "timestamp": version[0]}).encode()),
             struct.pack(">i", len(topics))]
    parts += [piece(f"{name} {r} {w} {perm} SINGLE_TAG".encode()) for name, (r, w, perm) in topics.items()]
    parts.append(piece(b"[]"))
    return zlib.compress(b"".join(parts), 9)


def register_request(*, addr: str, name: str = "broker-a", broker_id: int = 0, cluster: str = "DefaultCluster",
                     topics: Topics | None = None, version: tuple[int, int] = (1, 0), compressed: bool = False,
                     with_crc: bool = True, remoting_version: int = VERSION_V4_9_8) -> RemotingCommand:
    topics = {"TopicA": (4, 4, 6)} if topics is None else topics
    body = register_body_compressed(topics, version) if compressed else register_body_json(topics, version)
    ext: dict[str, object] = {"brokerName": name, "brokerAddr": addr, "clusterName": cluster,
                              "haServerAddr": addr.rsplit(":", 1)[0] + ":1", "brokerId": broker_id,
                              "compressed": compressed}
    if with_crc:
        ext["bodyCrc32"] = zlib.crc32(body) & 0x7FFFFFFF
    return request(RequestCode.REGISTER_BROKER, ext, body, remoting_version)


def route_request(topic: str, version: int = VERSION_V4_9_8, standard_only: bool | None = None) -> RemotingCommand:
    ext: dict[str, object] = {"topic": topic}
    if standard_only is not None:
        ext["acceptStandardJsonOnly"] = standard_only
    return request(RequestCode.GET_ROUTEINFO_BY_TOPIC, ext, version=version)
