"""Locust process lifecycle: quit when the harness that started us dies (HARNESS_PARENT_PID)."""
from __future__ import annotations

import logging
import os
from typing import Any

import gevent
from locust import events

logger = logging.getLogger(__name__)


def _watch_parent(environment: Any, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        gevent.sleep(0.5)
    logger.warning("harness process %s is gone; stopping the load", parent_pid)
    if environment.runner is not None:
        environment.runner.quit()


@events.init.add_listener
def _start_parent_watch(environment: Any, **_kwargs: Any) -> None:
    parent = int(os.environ.get("HARNESS_PARENT_PID", "0") or 0)
    if parent:
        gevent.spawn(_watch_parent, environment, parent)
