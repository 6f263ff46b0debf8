"""``python -m chaos.proxy``: run the built-in Toxiproxy server until SIGTERM or SIGINT.

The bound address is printed on stdout (``listening on http://127.0.0.1:PORT``) and, with ``--port-file``,
written to that file once the API answers, so a parent that asked for ``--port 0`` can find it.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from chaos.proxy.server import DEFAULT_HOST, DEFAULT_PORT, ServerStartError, ToxiproxyServer

logger = logging.getLogger("chaos.proxy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="API address (default %(default)s: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port; 0 picks a free one")
    parser.add_argument("--config", type=Path, help="JSON array of proxies (the /populate format) to create at start")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once serving")
    parser.add_argument("--seed", type=int, help="seed for toxicity draws, jitter and slicing")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone (no orphaned server)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = ToxiproxyServer(args.host, args.port, config=args.config, seed=args.seed)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watchdog = loop.create_task(_watch_parent(args.parent_pid, stop)) if args.parent_pid else None
    print(f"listening on {server.url}", flush=True)
    if args.port_file:
        _write_atomically(args.port_file, f"{server.port}\n")
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await server.stop()


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == pid:
        await asyncio.sleep(1.0)
    logger.warning("parent process %d is gone; shutting down", pid)
    stop.set()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except ServerStartError as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
