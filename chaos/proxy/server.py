"""The built-in Toxiproxy server as an object: ``await start()``, ``.port``, ``await stop()``."""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from types import TracebackType
from typing import Any

from chaos.proxy.api import VERSION, ToxiproxyApi
from chaos.proxy.collection import PopulateError, ProxyCollection
from chaos.proxy.errors import ApiError
from chaos.proxy.httpd import HttpServer, Limits
from chaos.proxy.listen import format_address, open_listener
from chaos.proxy.metrics import MetricsRegistry

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8474


class ServerStartError(OSError):
    """The API address cannot be bound, or the start-up config cannot be applied."""


class ToxiproxyServer:
    """Serves the Toxiproxy API on ``host:port`` (port 0 picks a free one) and runs the proxies it creates."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 config: Path | list[dict[str, Any]] | None = None, seed: int | None = None,
                 limits: Limits | None = None, shutdown_grace: float = 2.0) -> None:
        self.host = host
        self.port = port
        """The bound port once started."""
        self.config = config
        """Proxies to create at start, in /populate's format (a JSON file or the parsed list)."""
        self.metrics = MetricsRegistry()
        self.collection = ProxyCollection(self.metrics, random.Random(seed))
        self.api = ToxiproxyApi(self.collection, self.metrics)
        self._http = HttpServer(self.api.handle, limits or Limits())
        self._shutdown_grace = shutdown_grace
        self._started = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        assert not self._started, "a server starts once"
        address = format_address((self.host, self.port))
        try:
            sock = await open_listener(address)
        except ApiError as exc:
            raise ServerStartError(f"cannot serve the API on {address}: {exc.message}") from None
        self.port = sock.getsockname()[1]
        await self._http.start(sock)
        self._started = True
        logger.info("Toxiproxy API (built-in, %s) listening on %s", VERSION, self.url)
        if self.config is not None:
            await self._load_config(self.config)

    async def _load_config(self, config: Path | list[dict[str, Any]]) -> None:
        try:
            body = Path(config).read_bytes() if isinstance(config, (str, Path)) else json.dumps(config).encode()
            proxies = await self.collection.populate(body)
        except OSError as exc:
            await self.stop()
            raise ServerStartError(f"cannot read config {config}: {exc}") from None
        except (ApiError, PopulateError) as exc:
            await self.stop()
            raise ServerStartError(f"config {config}: {exc}") from None
        logger.info("populated %d proxies from config", len(proxies))

    async def stop(self) -> None:
        """Stop serving the API, stop every proxy and close every connection (aborting after the grace)."""
        if not self._started:
            return
        self._started = False
        await self._http.stop()
        await self.collection.close(self._shutdown_grace)
        logger.info("Toxiproxy API on %s stopped", self.url)

    async def __aenter__(self) -> ToxiproxyServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
