"""Admin requests: UPDATE_AND_CREATE_TOPIC, GET_ALL_TOPIC_CONFIG, GET_BROKER_RUNTIME_INFO (the KVTable
``mqadmin clusterList`` reads)."""
from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from cluster.local.broker_common import RequestRejected, check_topic_name, field_int, field_str, guarded, response
from cluster.local.commitlog import HEADER_SIZE
from cluster.local.storemeta import TopicConfig
from harness.remoting import jsonbody
from harness.remoting.codes import VERSION_V4_9_8, RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.server import Connection, RemotingServer

BROKER_VERSION_DESC = "V4_9_8"


class AdminProcessor:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.store

    def register(self, server: RemotingServer) -> None:
        server.register(RequestCode.UPDATE_AND_CREATE_TOPIC, guarded(self.create_topic))
        server.register(RequestCode.GET_ALL_TOPIC_CONFIG, guarded(self.all_topic_config))
        server.register(RequestCode.GET_BROKER_RUNTIME_INFO, guarded(self.runtime_info))

    def create_topic(self, request: RemotingCommand, conn: Connection
                     ) -> RemotingCommand | Awaitable[RemotingCommand]:
        ext = request.ext_fields
        topic = field_str(ext, "topic")
        check_topic_name(topic)
        if topic == self.broker.config.cluster_name:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR,
                                  f"the topic[{topic}] is conflict with system reserved words.")
        if not self.broker.is_master:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, "Can't modify topic or subscription group from "
                                  "the slave broker.")
        config = TopicConfig(topic, field_int(ext, "readQueueNums"), field_int(ext, "writeQueueNums"),
                             field_int(ext, "perm"), ext.get("topicFilterType") or "SINGLE_TAG",
                             field_int(ext, "topicSysFlag", default=0), ext.get("order", "false") == "true")
        committed = self.broker.topics.update(config)
        if committed is None:
            return response(request, ResponseCode.SUCCESS)
        return self._after_commit(request, committed)

    @staticmethod
    async def _after_commit(request: RemotingCommand, committed: Awaitable[tuple[int, str] | None]
                            ) -> RemotingCommand:
        """DLedger mode: the topic is answered once the group committed it (a new master will have it)."""
        failure = await committed
        return response(request, ResponseCode.SUCCESS) if failure is None else response(request, *failure)

    def all_topic_config(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        return response(request, ResponseCode.SUCCESS, body=jsonbody.dumps(self.store.topics.wrapper_json()))

    def runtime_info(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        """The KVTable of `mqadmin brokerStatus`; in DLedger mode also raftRole, raftTerm, raftLeaderId,
        raftCommitIndex, raftAppliedIndex, raftLastIndex (what `rmqh status` shows)."""
        extra = self.broker.raft.runtime_keys() if self.broker.raft is not None else {}
        table = {k: str(v) for k, v in {**self.runtime_table(), **extra}.items()}
        return response(request, ResponseCode.SUCCESS, body=jsonbody.dumps({"table": table}))

    def runtime_table(self) -> dict[str, object]:
        store, log = self.store, self.store.commitlog
        put, got = store.put_stats, store.get_stats
        disk = shutil.disk_usage(store.directory)
        first = store.commitlog.position_of(1) if log.last_index else -1
        earliest = _earliest_store_time(self.broker) if first >= 0 else 0
        uptime = int(time.time() * 1000) - store.boot_timestamp
        return {
            "brokerVersionDesc": BROKER_VERSION_DESC, "brokerVersion": VERSION_V4_9_8,
            # Totals count from this process's start: "this morning" is taken to be the boot.
            "msgPutTotalYesterdayMorning": 0, "msgPutTotalTodayMorning": 0, "msgPutTotalTodayNow": put.total,
            "msgGetTotalYesterdayMorning": 0, "msgGetTotalTodayMorning": 0, "msgGetTotalTodayNow": got.total,
            "putTps": put.tps_string(), "getTransferedTps": got.tps_string(),
            "getFoundTps": store.get_found.tps_string(), "getMissTps": store.get_miss.tps_string(),
            "getTotalTps": _sum_tps(store.get_found.tps_string(), store.get_miss.tps_string()),
            "sendThreadPoolQueueSize": 0, "sendThreadPoolQueueCapacity": 10000,
            "pullThreadPoolQueueSize": 0, "pullThreadPoolQueueCapacity": 100000,
            "queryThreadPoolQueueSize": 0, "queryThreadPoolQueueCapacity": 20000,
            "EndTransactionQueueSize": 0, "EndTransactionThreadPoolQueueCapacity": 100000,
            "sendThreadPoolQueueHeadWaitTimeMills": 0, "pullThreadPoolQueueHeadWaitTimeMills": 0,
            "queryThreadPoolQueueHeadWaitTimeMills": 0, "pageCacheLockTimeMills": 0,
            "dispatchBehindBytes": max(0, log.end_position - _dispatched_end(self.broker)),
            "earliestMessageTimeStamp": earliest, "startAcceptSendRequestTimeStamp": 0,
            "remainTransientStoreBufferNumbs": 0, "remainHowManyDataToCommit": 0, "remainHowManyDataToFlush": 0,
            "commitLogDirCapacity": f"Total : {_gib(disk.total)}, Free : {_gib(disk.free)}.",
            "commitLogDiskRatio": f"{(disk.total - disk.free) / disk.total:.4f}" if disk.total else "0",
            "consumeQueueDiskRatio": f"{(disk.total - disk.free) / disk.total:.4f}" if disk.total else "0",
            "commitLogMinOffset": 0, "commitLogMaxOffset": log.end_position,
            "putLatency99": "0.00", "putLatency999": "0.00",
            "bootTimestamp": store.boot_timestamp, "runtime": _runtime_text(uptime),
        }


def _earliest_store_time(broker: Broker) -> int:
    store = broker.store
    times = [store.store_time_at(t, q, 0) for t, q in store.queue_keys()]
    times = [t for t in times if t > 0]
    return min(times) if times else 0


def _dispatched_end(broker: Broker) -> int:
    log, index = broker.store.commitlog, broker.store.dispatched_index
    if index >= log.last_index:
        return log.end_position
    return log.position_of(index + 1) - HEADER_SIZE


def _sum_tps(a: str, b: str) -> str:
    return " ".join(f"{float(x) + float(y):.2f}" for x, y in zip(a.split(), b.split()))


def _gib(n: int) -> str:
    return f"{n / 1024 ** 3:.2f} GiB"


def _runtime_text(millis: int) -> str:
    seconds = millis // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"[ {days} days, {hours} hours, {minutes} minutes, {seconds} seconds ]"
