"""The built-in Toxiproxy: an asyncio implementation of the Toxiproxy 2.x HTTP API and its TCP proxies.

Used when no ``toxiproxy-server`` binary is on PATH. Terms, as in Toxiproxy:

- **proxy**: a named listener (``listen``) that forwards every accepted connection to ``upstream``.
- **connection** (``link.py``): one accepted client socket plus the upstream socket dialled for it.
- **direction**: ``upstream`` is client->server bytes, ``downstream`` server->client bytes.
- **pipe**: one direction of one connection; it moves bytes through that direction's toxics.
- **toxic**: a fault on one direction of a proxy (latency, bandwidth, timeout, ...), applied to open and new
  connections alike; **toxicity** is the chance it acts on a given connection direction.
- **stage**: one toxic running on one pipe, with that connection's state and timers.

Run it with ``python -m chaos.proxy``, in-process with :class:`ToxiproxyServer`, or as a child process (or a
real ``toxiproxy-server`` from PATH) with ``chaos.proxy.launcher.ToxiproxyProcess``. Deviations from
Toxiproxy, all deliberate: an empty listen host means 127.0.0.1 (not every interface); settings that crash
Toxiproxy (a slicer with ``average_size`` 0) are refused with a 400; byte counters move live and /metrics is
always served; a removed ``timeout`` toxic closes only the connections it acted on; half-closes are passed
on instead of closing both sides.
"""
from __future__ import annotations

from chaos.proxy.api import VERSION
from chaos.proxy.server import ServerStartError, ToxiproxyServer

__all__ = ["VERSION", "ServerStartError", "ToxiproxyServer"]
