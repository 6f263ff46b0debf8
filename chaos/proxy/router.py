"""Path patterns such as ``/proxies/{proxy}/toxics/{toxic}`` matched segment by segment (as gorilla/mux)."""
from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from chaos.proxy.httpd import Request, Response

Params = dict[str, str]
RouteHandler = Callable[[Request, Params], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Match:
    handler: RouteHandler | None
    """None: the path exists but not for this method (405)."""
    params: Params
    allowed: tuple[str, ...]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[list[str], dict[str, RouteHandler]]] = []

    def add(self, pattern: str, methods: tuple[str, ...], handler: RouteHandler) -> None:
        segments = pattern.strip("/").split("/")
        for known, handlers in self._routes:
            if known == segments:
                handlers.update(dict.fromkeys(methods, handler))
                return
        self._routes.append((segments, dict.fromkeys(methods, handler)))

    def match(self, method: str, path: str) -> Match | None:
        """The route for ``path``, or None (404)."""
        segments = path.strip("/").split("/")
        if path != "/" + "/".join(segments):
            return None  # trailing or doubled slashes: mux does not match them either
        for pattern, handlers in self._routes:
            params = _bind(pattern, segments)
            if params is not None:
                return Match(handlers.get(method), params, tuple(handlers))
        return None


def _bind(pattern: list[str], segments: list[str]) -> Params | None:
    if len(pattern) != len(segments):
        return None
    params: Params = {}
    for expected, actual in zip(pattern, segments, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            if not actual:
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params
