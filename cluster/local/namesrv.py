"""The embedded NameServer: RocketMQ 4.9.8's DefaultRequestProcessor over the route table in routes.py.

Each NameServer is on its own: brokers register with every one of them, and no NameServer talks to another.
Brokers silent for ``timing.broker_expiry`` are dropped by a scan every ``timing.namesrv_scan_interval``; a
broker whose connection closes is dropped at once. Log lines use fixed phrases ("broker registered (...)",
"broker expired", "broker connection closed, removed", "broker unregistered", "broker group has no master",
"broker group removed") because failover timelines are mined from them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.local.config import NamesrvConfig
from cluster.local.routes import DataVersion, DroppedBroker, RegisterResult, RouteTable, TopicConfig, encode_body
from cluster.local.server import Connection, Handler, RemotingServer
from harness.remoting import jsonbody
from harness.remoting.codes import MASTER_ID, VERSION_V3_0_11, VERSION_V4_9_4, RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand

logger = logging.getLogger(__name__)

ORDER_TOPIC_CONFIG = "ORDER_TOPIC_CONFIG"
_FAQ = "\nSee http://rocketmq.apache.org/docs/faq/ for further details."
#: A compressed registration may not inflate beyond this (the frame itself is at most 16 MiB).
_MAX_INFLATED = 64 * 1024 * 1024
_INT = re.compile(r"-?\d{1,19}")
_FILTER_TYPES = frozenset({"SINGLE_TAG", "MULTI_TAG"})
Processor = Callable[[RemotingCommand, Connection], RemotingCommand]


class BadRequest(Exception):
    """A request the NameServer refuses; the remark names the offending field."""

    def __init__(self, remark: str, code: int = ResponseCode.SYSTEM_ERROR) -> None:
        super().__init__(remark)
        self.remark = remark
        self.code = code


# ---------------------------------------------------------------- request headers

def field_str(request: RemotingCommand, name: str) -> str:
    value = request.ext_fields.get(name)
    if value is None:
        raise BadRequest(f"the custom field <{name}> is null")
    return value


def field_int(request: RemotingCommand, name: str, default: int | None = None) -> int:
    """A required integer header field, or an optional one when ``default`` is given."""
    raw = request.ext_fields.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"the custom field <{name}> is null")
        return default
    if not _INT.fullmatch(raw.strip()):
        raise BadRequest(f"the custom field <{name}> is not an integer: {raw[:64]!r}")
    return int(raw)


def field_bool(request: RemotingCommand, name: str) -> bool:
    # Java's Boolean.parseBoolean: anything but "true" (any case) is false.
    return request.ext_fields.get(name, "").strip().lower() == "true"


# ---------------------------------------------------------------- REGISTER_BROKER body

@dataclass(frozen=True)
class RegisterBody:
    data_version: DataVersion
    topics: list[TopicConfig]


def parse_register_body(body: bytes, *, compressed: bool, legacy: bool) -> RegisterBody:
    """RegisterBrokerBody as JSON or in its zlib form; a bare TopicConfigSerializeWrapper when ``legacy``."""
    if not body:  # RocketMQ: no body means version 0/0 and no topics
        return RegisterBody(DataVersion(), [])
    try:
        if compressed and not legacy:
            return _parse_compressed(body)
        return _parse_json(jsonbody.loads(body), legacy)
    except (ValueError, UnicodeDecodeError, zlib.error, struct.error, RecursionError) as exc:
        raise BadRequest(f"Failed to decode RegisterBrokerBody: {exc}") from None


def _parse_json(doc: Any, legacy: bool) -> RegisterBody:
    if not isinstance(doc, dict):
        raise ValueError("body: expected a JSON object")
    where = "body" if legacy else "topicConfigSerializeWrapper"
    wrapper = doc if legacy else doc.get("topicConfigSerializeWrapper", {})
    if not isinstance(wrapper, dict):
        raise ValueError(f"{where}: expected an object")
    table = wrapper.get("topicConfigTable") or {}
    if not isinstance(table, dict):
        raise ValueError(f"{where}.topicConfigTable: expected an object")
    topics = [TopicConfig.from_json(str(name), config, f"{where}.topicConfigTable.{name}")
              for name, config in table.items()]
    version = DataVersion.from_json(wrapper.get("dataVersion") or {}, f"{where}.dataVersion")
    return RegisterBody(version, topics)  # filterServerList: filter servers left RocketMQ in 4.x


def _parse_compressed(body: bytes) -> RegisterBody:
    # RegisterBrokerBody.encode(true): int32-length-prefixed dataVersion JSON, int32 topic count, one text
    # TopicConfig per topic, then filterServerList JSON and (5.x) static-topic mappings, both unused here.
    inflater = zlib.decompressobj()
    data = inflater.decompress(body, _MAX_INFLATED)
    if inflater.unconsumed_tail:
        raise ValueError(f"compressed body inflates beyond {_MAX_INFLATED} bytes")
    pos = 0

    def take(what: str, size: int | None = None) -> bytes:
        nonlocal pos
        if size is None:
            size = struct.unpack(">i", take(f"the length of {what}", 4))[0]
        if size < 0 or pos + size > len(data):
            raise ValueError(f"compressed body truncated inside {what}")
        pos += size
        return data[pos - size:pos]

    version = DataVersion.from_json(jsonbody.loads(take("dataVersion")))
    count = struct.unpack(">i", take("topic count", 4))[0]
    topics = [_topic_from_text(take(f"topic config #{i}").decode()) for i in range(count)]
    json.loads(take("filterServerList"))  # obsolete and unused, but read so a cut-off body is refused
    return RegisterBody(version, topics)


def _topic_from_text(text: str) -> TopicConfig:
    # TopicConfig.encode(): "name read write perm filterType[ attributesJson]"; no topicSysFlag in this form.
    parts = text.split(" ")
    if len(parts) < 5 or not all(_INT.fullmatch(p) for p in parts[1:4]) or parts[4] not in _FILTER_TYPES:
        raise ValueError(f"topic config {text[:80]!r}: expected 'name read write perm SINGLE_TAG|MULTI_TAG'")
    return TopicConfig(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))


# ---------------------------------------------------------------- KV config

class KvConfigStore:
    """KVConfigManager: namespaces of string pairs, persisted as {"configTable":{ns:{key:value}}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table: dict[str, dict[str, str]] = {}

    def load(self) -> None:
        try:
            table = json.loads(self.path.read_text())["configTable"]
            self.table = {str(ns): {str(k): str(v) for k, v in kv.items()} for ns, kv in table.items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("kv config %s unreadable, starting empty: %s", self.path, exc)

    def put(self, namespace: str, key: str, value: str) -> None:
        self.table.setdefault(namespace, {})[key] = value
        self._persist()

    def get(self, namespace: str, key: str) -> str | None:
        return self.table.get(namespace, {}).get(key)

    def delete(self, namespace: str, key: str) -> None:
        if self.table.get(namespace, {}).pop(key, None) is not None:
            self._persist()

    def namespace(self, namespace: str) -> dict[str, str] | None:
        return self.table.get(namespace)

    def _persist(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"configTable": self.table}, indent=1, sort_keys=True))
            os.replace(tmp, self.path)  # a crash mid-write leaves the previous file whole
        except OSError as exc:
            logger.error("cannot persist kv config to %s: %s", self.path, exc)


# ---------------------------------------------------------------- the NameServer

def _guarded(processor: Processor) -> Handler:
    def handle(request: RemotingCommand, conn: Connection) -> RemotingCommand:
        try:
            return processor(request, conn)
        except BadRequest as exc:
            logger.warning("request code %s from %s refused: %s", request.code, conn.peer, exc.remark)
            return request.make_response(exc.code, exc.remark)
    return handle


class NameServer:
    """One NameServer node: a RemotingServer, the route table, the KV config and the expiry scan."""

    def __init__(self, config: NamesrvConfig) -> None:
        self.config = config
        self.routes = RouteTable()
        self.kv = KvConfigStore(Path(config.data_dir) / "kvConfig.json")
        self.server = RemotingServer(f"namesrv {config.node_id}", config.host, config.port,
                                     idle_timeout=config.timing.channel_idle_timeout)
        self._scan_task: asyncio.Task[None] | None = None
        self._stopping = False
        for code, processor in self._processors().items():
            self.server.register(code, _guarded(processor))
        self.server.on_connection_closed(self._on_connection_closed)

    async def start(self) -> None:
        self.kv.load()
        await self.server.start()
        self._scan_task = asyncio.create_task(self._scan_loop())
        timing = self.config.timing
        logger.info("name server %s up on %s:%s (scan every %.2fs, broker expiry %.2fs)", self.config.node_id,
                    self.config.host, self.server.port, timing.namesrv_scan_interval, timing.broker_expiry)

    async def stop(self) -> None:
        self._stopping = True  # connections closed by our own shutdown are not broker failures
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
        await self.server.stop()

    def _processors(self) -> dict[int, Processor]:
        codes = RequestCode
        return {codes.REGISTER_BROKER: self._register, codes.UNREGISTER_BROKER: self._unregister,
                codes.QUERY_DATA_VERSION: self._query_data_version, codes.GET_ROUTEINFO_BY_TOPIC: self._route,
                codes.GET_BROKER_CLUSTER_INFO: self._cluster, codes.GET_TOPICS_BY_CLUSTER: self._topic_list,
                codes.GET_ALL_TOPIC_LIST_FROM_NAMESERVER: self._topic_list, codes.PUT_KV_CONFIG: self._kv,
                codes.GET_KV_CONFIG: self._kv, codes.DELETE_KV_CONFIG: self._kv,
                codes.WIPE_WRITE_PERM_OF_BROKER: self._write_perm, codes.ADD_WRITE_PERM_OF_BROKER: self._write_perm}

    # -- broker membership
    def _register(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        cluster, name = field_str(request, "clusterName"), field_str(request, "brokerName")
        addr, ha_addr = field_str(request, "brokerAddr"), field_str(request, "haServerAddr")
        broker_id = field_int(request, "brokerId")
        crc = field_int(request, "bodyCrc32", 0)
        if crc != 0 and crc != zlib.crc32(request.body) & 0x7FFFFFFF:
            logger.warning("register of %s/%s from %s refused: crc32 not match", name, addr, conn.peer)
            return request.make_response(ResponseCode.SYSTEM_ERROR, "crc32 not match")
        body = parse_register_body(request.body, compressed=field_bool(request, "compressed"),
                                   legacy=request.version < VERSION_V3_0_11)
        result = self.routes.register_broker(
            cluster=cluster, broker_name=name, broker_id=broker_id, addr=addr, ha_server_addr=ha_addr,
            data_version=body.data_version, topics=body.topics, conn_id=conn.conn_id, now=time.monotonic())
        self._log_register(result, cluster, name, broker_id, addr, len(body.topics))
        order = self.kv.namespace(ORDER_TOPIC_CONFIG)
        return request.make_response(
            ResponseCode.SUCCESS, ext_fields={"haServerAddr": result.ha_server_addr,
                                              "masterAddr": result.master_addr},
            body=encode_body({"table": order}, quoted_keys=False) if order else b"")

    def _unregister(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        dropped = self.routes.unregister_broker(
            cluster=field_str(request, "clusterName"), broker_name=field_str(request, "brokerName"),
            broker_id=field_int(request, "brokerId"), addr=field_str(request, "brokerAddr"))
        self._log_drop(logging.INFO, "broker unregistered", dropped, f" client={conn.peer}")
        return request.make_response(ResponseCode.SUCCESS)

    def _query_data_version(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        field_str(request, "brokerName"), field_str(request, "clusterName"), field_int(request, "brokerId")
        addr = field_str(request, "brokerAddr")
        try:
            version = DataVersion.from_json(jsonbody.loads(request.body or b"null"), "body")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(f"body is not a DataVersion: {exc}") from None
        changed = self.routes.topic_config_changed(addr, version)
        if not changed:  # an unchanged version counts as a heartbeat, as in RocketMQ
            self.routes.touch(addr, time.monotonic())
        known = self.routes.data_version_of(addr)
        return request.make_response(ResponseCode.SUCCESS, ext_fields={"changed": changed},
                                     body=encode_body(known.to_json(), quoted_keys=False) if known else b"")

    # -- routes
    def _route(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        topic = field_str(request, "topic")
        route = self.routes.route_for(topic)
        if route is None:
            return request.make_response(ResponseCode.TOPIC_NOT_EXIST,
                                         f"No topic route info in name server for the topic: {topic}{_FAQ}")
        standard = request.version >= VERSION_V4_9_4 or field_bool(request, "acceptStandardJsonOnly")
        return request.make_response(ResponseCode.SUCCESS, body=encode_body(route, quoted_keys=standard))

    def _cluster(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        # ClusterInfo is always written with fastjson's default encode(): bare numeric keys, in 4.9.8 and 5.3.3.
        body = encode_body(self.routes.cluster_info(), quoted_keys=False)
        return request.make_response(ResponseCode.SUCCESS, body=body)

    def _topic_list(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        if request.code == RequestCode.GET_TOPICS_BY_CLUSTER:
            topics = self.routes.topics_by_cluster(field_str(request, "cluster"))
        else:
            topics = self.routes.all_topics()
        return request.make_response(ResponseCode.SUCCESS, body=encode_body({"topicList": topics}, quoted_keys=False))

    def _write_perm(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        name, wipe = field_str(request, "brokerName"), request.code == RequestCode.WIPE_WRITE_PERM_OF_BROKER
        count = self.routes.wipe_write_perm(name) if wipe else self.routes.add_write_perm(name)
        logger.info("write perm %s: name=%s topics=%d client=%s", "wiped" if wipe else "added", name, count,
                    conn.peer)
        return request.make_response(ResponseCode.SUCCESS,
                                     ext_fields={"wipeTopicCount" if wipe else "addTopicCount": count})

    # -- KV config
    def _kv(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        namespace, key = field_str(request, "namespace"), field_str(request, "key")
        if request.code == RequestCode.GET_KV_CONFIG:
            value = self.kv.get(namespace, key)
            if value is None:
                return request.make_response(ResponseCode.QUERY_NOT_FOUND,
                                             f"No config item, Namespace: {namespace} Key: {key}")
            return request.make_response(ResponseCode.SUCCESS, ext_fields={"value": value})
        if request.code == RequestCode.PUT_KV_CONFIG:
            self.kv.put(namespace, key, field_str(request, "value"))
        else:
            self.kv.delete(namespace, key)
        logger.info("kv config %s: namespace=%s key=%s", "put" if request.code == RequestCode.PUT_KV_CONFIG
                    else "deleted", namespace, key)
        return request.make_response(ResponseCode.SUCCESS)

    # -- failure detection
    def _on_connection_closed(self, conn: Connection) -> None:
        if self._stopping:
            return
        for dropped in self.routes.drop_connection(conn.conn_id):
            self._log_drop(logging.INFO, "broker connection closed, removed", dropped, f" conn={conn.peer}")

    async def _scan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.timing.namesrv_scan_interval)
            try:
                self.scan_once(time.monotonic())
            except Exception:  # the scan must outlive any one bad pass
                logger.exception("broker expiry scan failed")

    def scan_once(self, now: float) -> list[DroppedBroker]:
        """Drop brokers silent for longer than the expiry and close their connections (scanNotActiveBroker)."""
        expired = self.routes.scan_expired(now, self.config.timing.broker_expiry)
        for dropped in expired:
            self._log_drop(logging.WARNING, "broker expired", dropped, f" silent={now - dropped.last_update:.2f}s")
            conn = self.server.connections.get(dropped.conn_id)
            if conn is not None:
                conn.close()
        return expired

    # -- logging for failover timelines
    def _log_register(self, result: RegisterResult, cluster: str, name: str, broker_id: int, addr: str,
                      topics: int) -> None:
        kind = result.kind
        detail = "".join((f" previous_id={result.previous_id}" if result.previous_id is not None else "",
                          f" replaced={result.replaced_addr}" if result.replaced_addr else "",
                          f" topics={topics}" if result.topics_updated else ""))
        logger.log(logging.DEBUG if kind == "periodic" else logging.INFO,
                   "broker registered (%s): cluster=%s name=%s id=%s addr=%s%s", kind, cluster, name, broker_id,
                   addr, detail, extra={"broker_name": name, "broker_id": broker_id, "broker_addr": addr})
        if result.topics_updated and kind == "periodic":
            logger.info("broker topics updated: name=%s addr=%s topics=%d", name, addr, topics)
        if result.previous_id == MASTER_ID and MASTER_ID not in self.routes.broker_addr_table[name].broker_addrs:
            logger.info("broker group has no master: name=%s (master %s re-registered as id %s)", name, addr,
                        broker_id)

    def _log_drop(self, level: int, event: str, dropped: DroppedBroker, detail: str = "") -> None:
        logger.log(level, "%s: cluster=%s name=%s id=%s addr=%s%s%s", event, dropped.cluster, dropped.broker_name,
                   dropped.broker_id, dropped.addr, "" if dropped.was_in_route else " (no longer in route)", detail,
                   extra={"broker_name": dropped.broker_name, "broker_id": dropped.broker_id,
                          "broker_addr": dropped.addr})
        if dropped.group_removed:
            logger.info("broker group removed: name=%s (no broker left, its topic queue data dropped)",
                        dropped.broker_name)
        elif dropped.broker_id == MASTER_ID and dropped.was_in_route:
            logger.info("broker group has no master: name=%s (queue data kept; clients cannot publish to it)",
                        dropped.broker_name)
