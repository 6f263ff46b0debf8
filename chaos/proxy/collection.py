"""All proxies of a server, by name, and the operations that create, replace or remove them.

Changes are serialised by one lock: starting a proxy awaits (binding, name lookups), and two requests must
not both create the same name.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

from chaos.proxy.decode import MISSING, expect_list, expect_object, get_bool, get_str, parse_json
from chaos.proxy.errors import MISSING_FIELD, PROXY_EXISTS, PROXY_NOT_FOUND, ApiError
from chaos.proxy.metrics import LiveProxy, MetricsRegistry
from chaos.proxy.proxy import Proxy

_STRUCT = "Proxy"


@dataclasses.dataclass(frozen=True)
class ProxySpec:
    """A proxy as a create or populate body describes it."""

    name: str
    listen: str
    upstream: str
    enabled: bool = True


def proxy_spec(obj: Any, where: str = "") -> ProxySpec:
    """Check one proxy object; ``where`` is populate's `` at proxy N``."""
    obj = expect_object(obj, "toxiproxy.Proxy")
    name, listen = get_str(obj, "name", _STRUCT), get_str(obj, "listen", _STRUCT)
    upstream, enabled = get_str(obj, "upstream", _STRUCT), get_bool(obj, "enabled", _STRUCT)
    if name is MISSING or not name:
        raise MISSING_FIELD.with_detail(f"name{where}")
    if upstream is MISSING or not upstream:
        raise MISSING_FIELD.with_detail(f"upstream{where}")
    return ProxySpec(name, "" if listen is MISSING else listen, upstream, enabled is not False)


class PopulateError(Exception):
    """Populate stopped at a failure; ``done`` are the proxies handled before it."""

    def __init__(self, error: ApiError, done: list[Proxy]) -> None:
        super().__init__(error.message)
        self.error = error
        self.done = done


class ProxyCollection:
    def __init__(self, metrics: MetricsRegistry, rng: random.Random) -> None:
        self.metrics = metrics
        self.rng = rng
        self._proxies: dict[str, Proxy] = {}
        self._retired: list[Proxy] = []
        """Deleted or replaced proxies whose connections may still be closing; shutdown waits for them too."""
        self._lock = asyncio.Lock()

    def all(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    async def create(self, body: bytes) -> Proxy:
        spec = proxy_spec(parse_json(body))
        async with self._lock:
            if spec.name in self._proxies:
                raise PROXY_EXISTS
            return await self._start_new(spec)

    async def _start_new(self, spec: ProxySpec) -> Proxy:
        """A new proxy, stored only if it could start (when it is meant to be enabled)."""
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.metrics, self.rng)
        if spec.enabled:
            await proxy.start()
        self._proxies[spec.name] = proxy
        return proxy

    async def populate(self, body: bytes) -> list[Proxy]:
        """Create or replace proxies; unchanged ones are kept as they are, toxics and enabled state included."""
        items = expect_list(parse_json(body), "[]toxiproxy.Proxy")
        specs = [proxy_spec(item, f" at proxy {i}") for i, item in enumerate(items, start=1)]
        done: list[Proxy] = []
        async with self._lock:
            for spec in specs:
                try:
                    done.append(await self._add_or_replace(spec))
                except ApiError as exc:
                    raise PopulateError(exc, done) from None
        return done

    async def _add_or_replace(self, spec: ProxySpec) -> Proxy:
        existing = self._proxies.get(spec.name)
        if existing is not None:
            if not await existing.differs(spec.listen, spec.upstream):
                return existing
            existing.stop()  # replaced; if the new one cannot start, the old one stays, stopped (as Toxiproxy)
        proxy = await self._start_new(spec)
        if existing is not None:
            self._retire(existing)
        return proxy

    async def update(self, name: str, body: bytes) -> Proxy:
        """PATCH (or the deprecated POST): listen, upstream and enabled; fields left out keep their values."""
        async with self._lock:
            proxy = self.get(name)
            obj = expect_object(parse_json(body), "toxiproxy.Proxy")
            listen, upstream = get_str(obj, "listen", _STRUCT), get_str(obj, "upstream", _STRUCT)
            enabled = get_bool(obj, "enabled", _STRUCT)
            get_str(obj, "name", _STRUCT)  # ignored (no renames), but Go still rejects a non-string
            await proxy.update(proxy.listen if listen is MISSING else listen,
                               proxy.upstream if upstream is MISSING else upstream,
                               proxy.enabled if enabled is MISSING else enabled)
            return proxy

    async def remove(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            proxy.stop()
            del self._proxies[name]
            self._retire(proxy)

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic; proxies stay."""
        async with self._lock:
            for proxy in list(self._proxies.values()):
                await proxy.start()
                proxy.toxics.clear()

    def _retire(self, proxy: Proxy) -> None:
        self._retired = [p for p in self._retired if p.connections]
        if proxy.connections:
            self._retired.append(proxy)

    async def close(self, timeout: float) -> None:
        """Server shutdown: stop all proxies and wait (bounded) for their connections to go."""
        async with self._lock:
            proxies = list(self._proxies.values()) + self._retired
            for proxy in proxies:
                proxy.stop()
            await asyncio.gather(*(proxy.drain(timeout) for proxy in proxies))

    def live(self) -> list[LiveProxy]:
        return [proxy.live() for proxy in self._proxies.values() if proxy.enabled]
