"""Pieces every broker handler module shares: header-field parsing with precise errors, fast responses.

A missing or garbled header field raises HeaderError; ``guarded`` turns it into the response a Java broker
gives (SYSTEM_ERROR, "the custom field <name> is null") instead of a logged traceback, so fuzzed requests
cost one line of log at most and the connection keeps being served.
"""
from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.remoting.codes import VERSION_V4_9_8, ResponseCode
from harness.remoting.frame import FLAG_RESPONSE, RemotingCommand

if TYPE_CHECKING:
    from cluster.local.server import Connection, HandlerResult

logger = logging.getLogger(__name__)

TOPIC_MAX_LENGTH = 127
_TOPIC_RE = re.compile(r"^[%|a-zA-Z0-9_-]+$")
RETRY_PREFIX = "%RETRY%"
DLQ_PREFIX = "%DLQ%"


class HeaderError(ValueError):
    """A request header field is missing or malformed; the message names the field."""


class RequestRejected(Exception):
    """A handler decided on an error response (code + remark) deep inside its logic."""

    def __init__(self, code: int, remark: str) -> None:
        super().__init__(remark)
        self.code = code
        self.remark = remark


def field_str(ext: dict[str, str], name: str, alias: str = "") -> str:
    value = ext.get(name)
    if value is None:
        raise HeaderError(f"the custom field <{name}>{f' ({alias})' if alias else ''} is null")
    return value


def field_int(ext: dict[str, str], name: str, alias: str = "", default: int | None = None) -> int:
    value = ext.get(name)
    if value is None:
        if default is not None:
            return default
        raise HeaderError(f"the custom field <{name}>{f' ({alias})' if alias else ''} is null")
    try:
        return int(value)
    except ValueError:
        raise HeaderError(f"the custom field <{name}>{f' ({alias})' if alias else ''} is not a number: "
                          f"{value[:64]!r}") from None


def field_bool(ext: dict[str, str], name: str, default: bool = False) -> bool:
    value = ext.get(name)
    return default if value is None else value.lower() == "true"


def response(request: RemotingCommand, code: int, remark: str | None = None,
             ext_fields: dict[str, str] | None = None, body: bytes = b"") -> RemotingCommand:
    """Like RemotingCommand.make_response without re-stringifying fields the caller already made strings.

    The version is the broker's own (4.9.8), as a Java broker's responses carry: clients read the broker
    version from heartbeat responses."""
    return RemotingCommand(code=code, opaque=request.opaque, flag=FLAG_RESPONSE, language="JAVA",
                           version=VERSION_V4_9_8, remark=remark,
                           ext_fields={} if ext_fields is None else ext_fields, body=body,
                           serialize_type=request.serialize_type)


def guarded(handler: Callable[[RemotingCommand, Connection], HandlerResult]
            ) -> Callable[[RemotingCommand, Connection], HandlerResult]:
    """Answer HeaderError / RequestRejected raised by ``handler`` with an error response."""
    @functools.wraps(handler)
    def wrapper(request: RemotingCommand, conn: Connection) -> HandlerResult:
        try:
            return handler(request, conn)
        except HeaderError as exc:
            logger.info("bad request code %s from %s: %s", request.code, conn.peer, exc)
            return response(request, ResponseCode.SYSTEM_ERROR, str(exc))
        except RequestRejected as exc:
            return response(request, exc.code, exc.remark)
    return wrapper


def check_topic_name(topic: str) -> None:
    """TopicValidator.validateTopic: raises RequestRejected(SYSTEM_ERROR) with the Java broker's wording."""
    if not topic.strip():
        raise RequestRejected(ResponseCode.SYSTEM_ERROR, "The specified topic is blank.")
    if len(topic) > TOPIC_MAX_LENGTH:
        raise RequestRejected(ResponseCode.SYSTEM_ERROR, "The specified topic is longer than topic max length.")
    if not _TOPIC_RE.match(topic):
        raise RequestRejected(ResponseCode.SYSTEM_ERROR, f"The specified topic[{topic}] contains illegal "
                              "characters, allowing only ^[%|a-zA-Z0-9_-]+$")


def retry_topic(group: str) -> str:
    return RETRY_PREFIX + group


def dlq_topic(group: str) -> str:
    return DLQ_PREFIX + group
