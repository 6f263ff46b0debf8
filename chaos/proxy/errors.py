"""API errors with the status codes and messages of Toxiproxy 2.x (``api.go``), so clients that match on them work."""
from __future__ import annotations


class ApiError(Exception):
    """An error the HTTP API reports as ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def with_detail(self, detail: str) -> ApiError:
        """Toxiproxy joins a generic message and the specific cause with ': '."""
        return ApiError(self.status, f"{self.message}: {detail}")


BAD_REQUEST_BODY = ApiError(400, "bad request body")
MISSING_FIELD = ApiError(400, "missing required field")
INVALID_STREAM = ApiError(400, "stream was invalid, can be either upstream or downstream")
INVALID_TOXIC_TYPE = ApiError(400, "invalid toxic type")
PROXY_NOT_FOUND = ApiError(404, "proxy not found")
TOXIC_NOT_FOUND = ApiError(404, "toxic not found")
PROXY_EXISTS = ApiError(409, "proxy already exists")
TOXIC_EXISTS = ApiError(409, "toxic already exists")


def bad_body(detail: str) -> ApiError:
    return BAD_REQUEST_BODY.with_detail(detail)


def internal(message: str) -> ApiError:
    """Toxiproxy reports any error that is not in its table (listen failures, ...) as a 500 with the error text."""
    return ApiError(500, message)
