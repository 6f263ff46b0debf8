"""Per-proxy byte counters and their Prometheus text form.

Counters are plain ints bumped on every read and write, so they move while a connection is open (Toxiproxy
only adds a connection's bytes when it closes). Like Prometheus counters they are keyed by the labels
``proxy, listener, upstream`` and outlive the proxy: a deleted proxy's series stays in /metrics, and a proxy
re-created with the same labels counts on.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from chaos.proxy.stream import Direction


@dataclasses.dataclass(slots=True)
class ByteCounters:
    received: int = 0
    """Bytes read from the source of this direction (the client for upstream, the server for downstream)."""
    sent: int = 0
    """Bytes handed to the sink's socket (lower than received by what toxics dropped or still hold)."""


@dataclasses.dataclass(slots=True)
class ProxyCounters:
    upstream: ByteCounters = dataclasses.field(default_factory=ByteCounters)
    downstream: ByteCounters = dataclasses.field(default_factory=ByteCounters)

    def direction(self, direction: Direction) -> ByteCounters:
        return self.upstream if direction is Direction.UPSTREAM else self.downstream

    def to_json(self) -> dict[str, Any]:
        return {d.value: {"received_bytes": c.received, "sent_bytes": c.sent}
                for d, c in ((Direction.UPSTREAM, self.upstream), (Direction.DOWNSTREAM, self.downstream))}


Labels = tuple[str, str, str]
"""(proxy, listener, upstream)"""


@dataclasses.dataclass(frozen=True)
class LiveProxy:
    labels: Labels
    active_connections: int


class MetricsRegistry:
    """All byte counters of one server."""

    def __init__(self) -> None:
        self._series: dict[Labels, ProxyCounters] = {}

    def counters(self, proxy: str, listener: str, upstream: str) -> ProxyCounters:
        return self._series.setdefault((proxy, listener, upstream), ProxyCounters())

    def render(self, live: Iterable[LiveProxy]) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []
        for metric in ("received", "sent"):
            name = f"toxiproxy_proxy_{metric}_bytes_total"
            lines += [f"# HELP {name} Bytes {metric} by the proxy per direction (live).", f"# TYPE {name} counter"]
            for labels, counters in sorted(self._series.items()):
                for direction in Direction:
                    value = getattr(counters.direction(direction), metric)
                    lines.append(f"{name}{{{_labels(labels, direction.value)}}} {value}")
        gauge = "rmqh_proxy_active_connections"
        lines += [f"# HELP {gauge} Open client connections of an enabled proxy.", f"# TYPE {gauge} gauge"]
        lines += [f"{gauge}{{{_labels(p.labels)}}} {p.active_connections}"
                  for p in sorted(live, key=lambda p: p.labels)]
        return "\n".join(lines) + "\n"


def _labels(labels: Labels, direction: str | None = None) -> str:
    proxy, listener, upstream = labels
    pairs = ([("direction", direction)] if direction else []) + [
        ("listener", listener), ("proxy", proxy), ("upstream", upstream)]
    return ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
