"""The built-in faults, one per module; importing this package registers them all (see chaos.base)."""
from __future__ import annotations

from chaos.faults import (bandwidth, isolate_broker, kill, kill_master, kill_namesrv, latency, link_down,
                          partition_leader, partition_namesrv, pause, reset_peer, restart, resume, slicer, start,
                          stop)

__all__ = ["bandwidth", "isolate_broker", "kill", "kill_master", "kill_namesrv", "latency", "link_down",
           "partition_leader", "partition_namesrv", "pause", "reset_peer", "restart", "resume", "slicer", "start",
           "stop"]
