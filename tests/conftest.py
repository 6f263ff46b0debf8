from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local.process import NodeProcess, stop_node


@pytest.fixture
def node_reaper() -> Iterator[list[NodeProcess]]:
    """Append every node a test starts; all are stopped at teardown, whatever the test did."""
    nodes: list[NodeProcess] = []
    yield nodes
    for node in reversed(nodes):
        stop_node(node, timeout=5)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
