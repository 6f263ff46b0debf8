"""Fixtures shared by the unit tests of the built-in Toxiproxy server and its client."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.proxy.testing import EchoServer, ServerThread


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """A built-in Toxiproxy API server on a free loopback port, in a thread of this process."""
    with ServerThread() as srv:
        yield srv


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """A loopback TCP echo server to put behind proxies."""
    with EchoServer() as srv:
        yield srv
