"""A scriptable in-process remoting server for transport tests: stdlib sockets and threads only, so it also
runs under gevent monkey-patching. ``handler(peer, request)`` decides what happens to each request."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from harness.remoting.frame import FLAG_RESPONSE, FrameDecoder, RemotingCommand, encode_command


class Peer:
    """The server side of one accepted connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.received: list[RemotingCommand] = []

    def send(self, cmd: RemotingCommand) -> None:
        with self._lock:
            self.sock.sendall(encode_command(cmd))

    def reply(self, request: RemotingCommand, code: int = 0, **ext: object) -> None:
        self.send(request.make_response(code, ext_fields=ext))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[Peer, RemotingCommand], None]


def echo(peer: Peer, request: RemotingCommand) -> None:
    if not request.is_oneway:
        peer.reply(request, 0, echo=request.ext_fields.get("n", ""))


class FakeServer:
    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.addr = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.peers: list[Peer] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(peer,), daemon=True).start()

    def _serve(self, peer: Peer) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = peer.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for cmd in decoder.feed(data):
                peer.received.append(cmd)
                if not cmd.flag & FLAG_RESPONSE:
                    self.handler(peer, cmd)

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        for peer in self.peers:
            peer.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
