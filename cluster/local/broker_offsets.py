"""Offset requests: consumer offsets (query, update), queue offsets (max, min, by timestamp), the earliest
store time, and VIEW_MESSAGE_BY_ID (a record by its commit-log offset)."""
from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from cluster.local.broker_common import RequestRejected, field_int, field_str, guarded, response
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.broker import Broker
    from cluster.local.server import Connection, RemotingServer


class OffsetProcessor:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.store

    def register(self, server: RemotingServer) -> None:
        for code, handler in (
            (RequestCode.QUERY_CONSUMER_OFFSET, self.query_consumer_offset),
            (RequestCode.UPDATE_CONSUMER_OFFSET, self.update_consumer_offset),
            (RequestCode.GET_MAX_OFFSET, self.max_offset),
            (RequestCode.GET_MIN_OFFSET, self.min_offset),
            (RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, self.search_offset),
            (RequestCode.GET_EARLIEST_MSG_STORETIME, self.earliest_store_time),
            (RequestCode.VIEW_MESSAGE_BY_ID, self.view_message),
        ):
            server.register(code, guarded(handler))

    @staticmethod
    def _queue(ext: dict[str, str]) -> tuple[str, int]:
        return field_str(ext, "topic"), field_int(ext, "queueId")

    def query_consumer_offset(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        """The committed offset; with none, 0 when the queue still starts at 0 (its data is "in memory"),
        else QUERY_NOT_FOUND. 5.x clients may ask for QUERY_NOT_FOUND outright (setZeroIfNotFound=false)."""
        ext = request.ext_fields
        group = field_str(ext, "consumerGroup")
        topic, queue_id = self._queue(ext)
        offset = self.store.offsets.query(group, topic, queue_id)
        if offset >= 0:
            return response(request, ResponseCode.SUCCESS, None, {"offset": str(offset)})
        if ext.get("setZeroIfNotFound", "true").lower() != "false" and self.store.min_offset(topic, queue_id) <= 0:
            return response(request, ResponseCode.SUCCESS, None, {"offset": "0"})
        return response(request, ResponseCode.QUERY_NOT_FOUND, "Not found, V3_0_6_SNAPSHOT maybe this group "
                        "consumer boot first")

    def update_consumer_offset(self, request: RemotingCommand, conn: Connection
                               ) -> RemotingCommand | Awaitable[RemotingCommand]:
        """Store the offset. On a DLedger master a synchronous update is answered once the offset is
        committed in the group (it then survives a failover); oneway updates ride the next batch."""
        ext = request.ext_fields
        group = field_str(ext, "consumerGroup")
        topic, queue_id = self._queue(ext)
        self.store.offsets.commit(group, topic, queue_id, field_int(ext, "commitOffset"))
        raft = self.broker.raft
        if raft is None or request.is_oneway or not self.broker.is_master:
            return response(request, ResponseCode.SUCCESS)
        return self._after_sync(request, raft.offset_sync.flushed())

    @staticmethod
    async def _after_sync(request: RemotingCommand, flushed: Awaitable[tuple[int, str] | None]) -> RemotingCommand:
        failure = await flushed
        return response(request, ResponseCode.SUCCESS) if failure is None else response(request, *failure)

    def max_offset(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        topic, queue_id = self._queue(request.ext_fields)
        return response(request, ResponseCode.SUCCESS, None, {"offset": str(self.store.max_offset(topic, queue_id))})

    def min_offset(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        topic, queue_id = self._queue(request.ext_fields)
        return response(request, ResponseCode.SUCCESS, None, {"offset": str(self.store.min_offset(topic, queue_id))})

    def search_offset(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        topic, queue_id = self._queue(request.ext_fields)
        timestamp = field_int(request.ext_fields, "timestamp")
        offset = self.store.search_offset(topic, queue_id, timestamp)
        return response(request, ResponseCode.SUCCESS, None, {"offset": str(offset)})

    def earliest_store_time(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        topic, queue_id = self._queue(request.ext_fields)
        timestamp = self.store.store_time_at(topic, queue_id, self.store.min_offset(topic, queue_id))
        return response(request, ResponseCode.SUCCESS, None, {"timestamp": str(timestamp)})

    def view_message(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        offset = field_int(request.ext_fields, "offset")
        record = self.store.read_message(offset)
        if record is None:
            raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"can not find message by the offset, {offset}")
        return response(request, ResponseCode.SUCCESS, body=record)
