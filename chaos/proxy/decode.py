"""Request-body decoding that accepts and rejects what Toxiproxy's Go ``encoding/json`` does.

Go matches object keys to struct fields case-insensitively, treats ``null`` as "leave the field alone", and
rejects a value of the wrong JSON type (a float for an int64 field, a string for a bool). Every failure is a
400 ``bad request body: ...``; nothing here may raise anything else, whatever bytes arrive.
"""
from __future__ import annotations

import json
import math
from typing import Any

from chaos.proxy.errors import ApiError, bad_body

MISSING: Any = object()
"""Sentinel: the key is absent or null."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT32_MAX = 3.4028234663852886e38


def parse_json(body: bytes) -> Any:
    """Parse a request body; Go says ``EOF`` for an empty one."""
    if not body.strip():
        raise bad_body("EOF")
    try:
        # Go replaces invalid UTF-8 with U+FFFD instead of failing; do the same.
        return json.loads(body.decode("utf-8", errors="replace"), parse_constant=_reject_constant)
    except RecursionError:
        raise bad_body("json: exceeded max depth") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, ints over the digit limit
        raise bad_body(f"json: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def json_kind(value: Any) -> str:
    """The JSON type name Go puts into its unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def type_error(value: Any, field: str, go_type: str) -> ApiError:
    shown = f"number {value}" if json_kind(value) == "number" else json_kind(value)
    return bad_body(f"json: cannot unmarshal {shown} into Go struct field {field} of type {go_type}")


def expect_object(value: Any, go_type: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_body(f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}")
    return value


def expect_list(value: Any, go_type: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_body(f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}")
    return value


def field(obj: dict[str, Any], key: str) -> Any:
    """The value for ``key``: an exact match wins, else a case-insensitive one (as Go); MISSING if absent or null."""
    value = obj.get(key, MISSING)
    if value is MISSING:
        lowered = key.lower()
        value = next((v for k, v in obj.items() if k.lower() == lowered), MISSING)
    return MISSING if value is None else value


def get_str(obj: dict[str, Any], key: str, struct: str) -> Any:
    value = field(obj, key)
    if value is not MISSING and not isinstance(value, str):
        raise type_error(value, f"{struct}.{key}", "string")
    return value


def get_bool(obj: dict[str, Any], key: str, struct: str) -> Any:
    value = field(obj, key)
    if value is not MISSING and not isinstance(value, bool):
        raise type_error(value, f"{struct}.{key}", "bool")
    return value


def get_int(obj: dict[str, Any], key: str, struct: str, go_type: str = "int64") -> Any:
    value = field(obj, key)
    if value is MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not _INT64_MIN <= value <= _INT64_MAX:
        raise type_error(value, f"{struct}.{key}", go_type)
    return value


def get_float32(obj: dict[str, Any], key: str, struct: str) -> Any:
    value = field(obj, key)
    if value is MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error(value, f"{struct}.{key}", "float32")
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        raise type_error(value, f"{struct}.{key}", "float32")
    return float(value)
