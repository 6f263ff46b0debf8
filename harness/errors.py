"""One error hierarchy for the whole harness; every error names what is wrong and where."""
from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. The CLI prints it and exits non-zero."""

    exit_code = 1


class ConfigError(HarnessError):
    """Bad user input: a field, a node id, a fault name, a parameter. Nothing has been changed."""

    exit_code = 2


class RemotingError(HarnessError):
    """A remoting call failed at the transport level (connect, timeout, closed connection)."""


class RemotingTimeoutError(RemotingError):
    """No response in time: the outcome of the request is unknown (ambiguous, not failed)."""


class RemotingConnectError(RemotingError):
    """The connection could not be opened: the request was certainly not delivered."""


class ResponseError(HarnessError):
    """The server answered with an error code."""

    def __init__(self, code: int, remark: str | None, addr: str = "") -> None:
        self.code = code
        self.remark = remark
        self.addr = addr
        super().__init__(f"{addr}: response code {code}: {remark or ''}".strip())


class ClusterError(HarnessError):
    """The cluster cannot be started, found or stopped as asked."""
