"""The two directions of a proxied connection and the unit of data that flows through a toxic chain."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.StrEnum):
    """Which way bytes flow. Toxiproxy names directions after where the bytes go."""

    UPSTREAM = "upstream"
    """Client -> server bytes (the proxy reads the client, writes the upstream)."""
    DOWNSTREAM = "downstream"
    """Server -> client bytes."""


def parse_direction(value: str) -> Direction | None:
    """Toxiproxy accepts any letter case on input (and echoes the input unchanged elsewhere)."""
    try:
        return Direction(value.lower())
    except ValueError:
        return None


@dataclass(slots=True)
class Chunk:
    """Bytes read in one go, stamped with the loop time they were read at.

    Latency is counted from ``stamp`` rather than from when a toxic sees the chunk, so data that queues up
    behind a delayed chunk does not pile up more delay.
    """

    data: bytes
    stamp: float
