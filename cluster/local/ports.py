"""Free loopback ports that nothing else will take between planning and binding.

Ports are planned first (a node's config names its own and its proxies' addresses) and bound later, one
node after the other. A port from ``bind(0)`` lies in the kernel's ephemeral range, the same range every
outgoing connection draws its local port from: with a proxy in front of every link, a starting cluster
opens dozens of connections (broker -> proxy, proxy -> NameServer, ...) while later nodes have not bound
yet, and one of them sometimes lands on a planned port ("address already in use"). Ports below the
ephemeral range are never handed out by the kernel on its own, so planning from there removes the race.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

from cluster.topology import PortSource

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Lowest port handed out: above the well-known and most registered service ports.
LOW_PORT = 20000


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for automatic ports (Linux default 32768-60999); that default elsewhere."""
    try:
        low, high = (int(part) for part in path.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


class QuietPorts(PortSource):
    """A PortSource handing out free ports below the ephemeral range, never twice.

    Falls back to a kernel-chosen port if the quiet range is too small or has nothing free."""

    def __init__(self, host: str = "127.0.0.1", rng: random.Random | None = None,
                 low: int = LOW_PORT, high: int | None = None) -> None:
        super().__init__(host)
        self._rng = rng or random.Random()
        self._low = low
        self._high = (ephemeral_range()[0] - 1) if high is None else high

    def __call__(self) -> int:
        if self._high - self._low >= 1000:
            for _ in range(200):
                port = self._rng.randint(self._low, self._high)
                if port not in self._given and _bindable(self._host, port):
                    self._given.add(port)
                    return port
        return self._kernel_port()

    def _kernel_port(self) -> int:
        while True:
            with socket.socket() as sock:
                sock.bind((self._host, 0))
                port = int(sock.getsockname()[1])
            if port not in self._given:
                self._given.add(port)
                return port


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR: a port with connections still in TIME_WAIT counts as taken, as it is for a server
    # that binds without it.
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False
