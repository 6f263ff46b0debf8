"""One Raft replica as a process, for benchmarks/bench_raft.py: ``python -m cluster.local.dledger_bench_node``.

It speaks JSON lines: events on stdout (ready, role, first_commit, load_result, status), commands on
stdin ({"cmd": "load", "seconds": S, "concurrency": C, "size": B} or {"cmd": "status"}). On becoming leader it
appends one probe entry at once and reports when it committed, which is what failover time is measured to.
The load runs inside this process, the way a broker's send handler would drive the node: append_nowait of
one payload per call, the next call issued from the previous one's completion callback.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from cluster.local.commitlog import CommitLog, Entry
from cluster.local.config import timing_profile
from cluster.local.dledger import NotLeaderError, PendingFullError, QuorumTimeoutError, RaftNode


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


class Load:
    """``concurrency`` appends kept outstanding for ``seconds``; counts what committed."""

    def __init__(self, node: RaftNode, seconds: float, concurrency: int, size: int) -> None:
        self.node, self.concurrency = node, concurrency
        self.payload = os.urandom(size)
        self.end = time.monotonic() + seconds
        self.committed = self.errors = self.outstanding = 0
        self.done = asyncio.get_running_loop().create_future()

    async def run(self) -> dict[str, object]:
        started = time.monotonic()
        for _ in range(self.concurrency):
            self._issue()
        await self.done
        return {"committed": self.committed, "errors": self.errors, "elapsed": time.monotonic() - started}

    def _issue(self) -> None:
        if time.monotonic() >= self.end:
            self._finish_if_idle()
            return
        try:
            _, future = self.node.append_nowait([self.payload])
        except PendingFullError:
            asyncio.get_running_loop().call_later(0.001, self._issue)
            return
        except NotLeaderError:
            self.errors += 1
            self._finish_if_idle()
            return
        self.outstanding += 1
        future.add_done_callback(self._on_done)

    def _on_done(self, future: asyncio.Future[list[Entry]]) -> None:
        self.outstanding -= 1
        if future.exception() is None:
            self.committed += 1
        else:
            self.errors += 1
        self._issue()

    def _finish_if_idle(self) -> None:
        if self.outstanding == 0 and not self.done.done():
            self.done.set_result(None)


async def probe(node: RaftNode, term: int) -> None:
    """Append until one entry commits in ``term``; report the moment."""
    try:
        await node.append([b"probe"])
    except (QuorumTimeoutError, NotLeaderError):
        return  # lost leadership before committing: the next leader reports instead
    emit("first_commit", term=term)


async def serve(args: argparse.Namespace) -> None:
    peers = dict(item.split("=", 1) for item in args.peers.split(","))
    data = Path(args.dir)
    log = CommitLog(data / "commitlog")
    tasks: set[asyncio.Task[None]] = set()

    def on_role(role: str, term: int, leader: str | None) -> None:
        emit("role", role=role, term=term, leader=leader)
        if role == "leader":
            task = asyncio.get_running_loop().create_task(probe(node, term))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    host, port = peers[args.id].rsplit(":", 1)
    node = RaftNode(args.id, peers, log, data / "raft", timing_profile(args.profile), host, int(port),
                    on_commit=lambda index: None, on_role_change=on_role)
    await node.start()
    flusher = asyncio.create_task(flush_forever(log))
    emit("ready", id=args.id, pid=os.getpid())
    try:
        await read_commands(node)
    finally:
        flusher.cancel()
        await node.stop()
        log.close()


async def flush_forever(log: CommitLog) -> None:
    while True:  # asynchronous flush once a second, off the event loop (as a broker's store would)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(log.flush)


async def read_commands(node: RaftNode) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "status":
            emit("status", **node.status())
        elif cmd["cmd"] == "load":
            if node.role != "leader":
                emit("load_result", error="not leader")
                continue
            result = await Load(node, cmd["seconds"], cmd["concurrency"], cmd["size"]).run()
            emit("load_result", **result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", required=True)
    parser.add_argument("--peers", required=True, help="n0=host:port,n1=host:port,...")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--profile", default="fast")
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=str(Path(args.dir) / "node.log"), level=logging.INFO,
                        format=f"%(asctime)s %(levelname)s {args.id} %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
