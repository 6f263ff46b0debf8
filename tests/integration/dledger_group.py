"""Test support for the Raft group: an in-process group of RaftNodes on real loopback sockets, a cuttable
TCP link proxy (a stand-in for a Toxiproxy proxy on one directed peer link) and an async wait_until."""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from cluster.local.commitlog import CommitLog
from cluster.local.config import TIMING_PROFILES, Timing
from cluster.local.dledger import RaftNode
from cluster.local.process import free_port

FAST: Timing = TIMING_PROFILES["fast"]


async def wait_until(predicate: Callable[[], object], timeout: float, message: str) -> object:
    """Poll ``predicate`` on the running loop until it is truthy; fail with ``message`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.01)


class LinkProxy:
    """Forwards one directed peer link; ``cut()`` drops its connections and refuses new ones until heal()."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cut_off = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def heal(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class Member:
    """One replica: its data directories, its log and (while running) its RaftNode."""

    def __init__(self, group: RaftGroup, node_id: str) -> None:
        self.group = group
        self.node_id = node_id
        self.dir = group.tmp / node_id
        self.port = free_port()
        self.node: RaftNode | None = None
        self.log: CommitLog | None = None
        self.commits: list[int] = []
        self.roles: list[tuple[str, int, str | None]] = []
        self.truncations: list[int] = []

    async def start(self) -> RaftNode:
        self.log = CommitLog(self.dir / "commitlog", segment_size=1024 * 1024)
        self.node = RaftNode(self.node_id, self.group.peers_of(self.node_id), self.log, self.dir / "raft",
                             self.group.timing, "127.0.0.1", self.port, on_commit=self.commits.append,
                             on_role_change=lambda *r: self.roles.append(r), on_truncate=self.truncations.append,
                             rng=random.Random(f"{self.node_id}-{len(self.roles)}"))
        await self.node.start()
        return self.node

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
            self.node = None
        if self.log is not None:
            self.log.close()
            self.log = None


class RaftGroup:
    """``size`` replicas n0..; with ``proxied`` every directed link a->b goes through its own LinkProxy."""

    def __init__(self, tmp: Path, size: int = 3, proxied: bool = False, timing: Timing = FAST) -> None:
        self.tmp = tmp
        self.timing = timing
        self.members = {f"n{i}": Member(self, f"n{i}") for i in range(size)}
        self.proxies: dict[tuple[str, str], LinkProxy] = {}
        if proxied:
            self.proxies = {(a, b): LinkProxy(self.members[b].port)
                            for a in self.members for b in self.members if a != b}

    def peers_of(self, node_id: str) -> dict[str, str]:
        peers = {}
        for other, member in self.members.items():
            proxy = self.proxies.get((node_id, other))
            peers[other] = f"127.0.0.1:{proxy.port if proxy else member.port}"
        return peers

    async def start(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()
        for member in self.members.values():
            await member.start()

    async def stop(self) -> None:
        for member in self.members.values():
            await member.stop()
        for proxy in self.proxies.values():
            await proxy.stop()

    def running(self) -> list[RaftNode]:
        return [m.node for m in self.members.values() if m.node is not None]

    def leader(self, among: list[str] | None = None) -> RaftNode | None:
        """The one leader of the highest term among the running (or the listed) members, if any."""
        nodes = [n for n in self.running() if among is None or n.self_id in among]
        leaders = [n for n in nodes if n.role == "leader"]
        if not leaders:
            return None
        best = max(leaders, key=lambda n: n.term)
        return best if all(n.term <= best.term for n in nodes) else None

    async def wait_leader(self, timeout: float = 10.0, among: list[str] | None = None) -> RaftNode:
        node = await wait_until(lambda: self.leader(among), timeout, "a leader")
        assert isinstance(node, RaftNode)
        return node

    def isolate(self, node_id: str) -> None:
        for (a, b), proxy in self.proxies.items():
            if node_id in (a, b):
                proxy.cut()

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()


def log_contents(node: RaftNode, upto: int | None = None) -> list[tuple[int, int, bytes]]:
    last = node.log.last_index if upto is None else upto
    out: list[tuple[int, int, bytes]] = []
    while len(out) < last:
        batch = node.log.entries_from(len(out) + 1, 1 << 20, 1000)
        if not batch:
            break
        out.extend((e.index, e.term, e.payload) for e in batch if e.index <= last)
    return out
