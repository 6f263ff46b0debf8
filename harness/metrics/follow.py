"""Keeps a ProcessSampler's node set in step with the cluster state file, so a node that a fault or heal
restarted (new pid) goes on being sampled. Extra entries (the load generator) are kept as they are."""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from harness.errors import ClusterError
from harness.metrics.process import ProcessSampler
from harness.state import load_state

logger = logging.getLogger(__name__)


class StateFollower:
    def __init__(self, sampler: ProcessSampler, state_dir: Path, interval: float = 1.0) -> None:
        self._sampler = sampler
        self._state_dir = state_dir
        self._interval = interval
        self._extra: dict[str, tuple[str, int]] = {}
        self._last: dict[str, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-follower", daemon=True)

    def set_extra(self, extra: Mapping[str, tuple[str, int]]) -> None:
        """Processes that are not cluster nodes (e.g. Locust) to sample as well."""
        self._extra = dict(extra)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        try:
            nodes = {n.node_id: (n.role, n.pid) for n in load_state(self._state_dir).nodes if n.pid}
        except ClusterError:  # between a down and an up the file may be missing: keep what we had
            return
        merged = {**nodes, **self._extra}
        if force or merged != self._last:
            self._last = merged
            self._sampler.set_nodes(merged)

    def start(self) -> None:
        self.refresh(force=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # a sampler helper must never take the run down
                logger.exception("state follower failed; node set left as it was")
