"""Entry point of one embedded node process: ``python -m cluster.local.node CONFIG.json``.

Reads the config, logs to the node's own log file, runs the role (NameServer or broker) until SIGTERM or
SIGINT, and exits on its own when its supervising process dies (``parent_pid``), so a killed harness leaves
no node behind.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

from cluster.local.config import BrokerConfig, NamesrvConfig, NodeConfig, load_config

logger = logging.getLogger("cluster.local.node")


class NodeRole(Protocol):
    """What node.py needs of a role: an async start that returns once it listens, and an async stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_role(config: NodeConfig) -> NodeRole:
    if isinstance(config, NamesrvConfig):
        from cluster.local.namesrv import NameServer

        return NameServer(config)
    if isinstance(config, BrokerConfig):
        from cluster.local.broker import Broker

        return Broker(config)
    raise TypeError(f"no role for {type(config).__name__}")


def setup_logging(config: NodeConfig) -> None:
    Path(config.log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(config.log_file)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {config.node_id} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("RMQH_NODE_LOG_LEVEL", "INFO"))


async def watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    # Polling is the portable way; PR_SET_PDEATHSIG would fire on the death of the spawning *thread*.
    while not stop.is_set():
        if os.getppid() != parent_pid:
            logger.warning("supervisor %s is gone; shutting down", parent_pid)
            stop.set()
            return
        await asyncio.sleep(0.5)


async def serve(config: NodeConfig) -> None:
    role = build_role(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await role.start()
    logger.info("node %s (%s) started, pid %s", config.node_id, config.role, os.getpid())
    watcher = asyncio.create_task(watch_parent(config.parent_pid, stop)) if config.parent_pid else None
    try:
        await stop.wait()
    finally:
        if watcher:
            watcher.cancel()
        logger.info("node %s stopping", config.node_id)
        await role.stop()
        logger.info("node %s stopped", config.node_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.local.node", description=__doc__)
    parser.add_argument("config", type=Path, help="node config JSON written by the supervisor")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"cannot load node config {args.config}: {exc}", file=sys.stderr)
        return 2
    setup_logging(config)
    try:
        asyncio.run(serve(config))
    except Exception:
        logger.exception("node %s crashed", config.node_id)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
