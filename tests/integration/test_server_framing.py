"""The node server answers good frames that precede a bad one in the same read, then closes that connection."""
from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from harness.remoting.codes import RequestCode
from harness.remoting.frame import FrameDecoder, RemotingCommand, encode_command
from tests.helpers import namesrv_config, start_node

pytestmark = pytest.mark.integration


def test_good_frame_answered_then_connection_closed(tmp_path: Path, node_reaper: list) -> None:
    node = start_node(namesrv_config(tmp_path), tmp_path)
    node_reaper.append(node)
    good = encode_command(RemotingCommand(code=RequestCode.GET_BROKER_CLUSTER_INFO, opaque=77))
    with socket.create_connection((node.config.host, node.config.port), timeout=10) as sock:
        sock.sendall(good + struct.pack(">i", -1))
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break  # closed by the server, as it must be
            received += chunk
    [reply] = FrameDecoder().feed(received)
    assert reply.opaque == 77 and reply.is_response
    with socket.create_connection((node.config.host, node.config.port), timeout=10) as sock:  # still serving
        sock.sendall(good)
        decoder, replies = FrameDecoder(), []
        while not replies:
            chunk = sock.recv(65536)
            assert chunk, "server closed a healthy connection"
            replies = decoder.feed(chunk)
        assert replies[0].opaque == 77
