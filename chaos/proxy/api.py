"""The Toxiproxy 2.x HTTP API: routes, status codes and JSON shapes as ``api.go`` has them.

Extensions, which a real Toxiproxy answers with 404: ``stats`` in every proxy object, ``/metrics`` always
(Toxiproxy needs ``-proxy-metrics``) with live counters, and ``GET /proxies/{proxy}/connections``.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from chaos.proxy.collection import PopulateError, ProxyCollection
from chaos.proxy.errors import ApiError
from chaos.proxy.httpd import Request, Response
from chaos.proxy.metrics import MetricsRegistry
from chaos.proxy.router import Params, Router

logger = logging.getLogger(__name__)

VERSION = "2.12.0-rmqh"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def json_response(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode(), _JSON)


def error_response(error: ApiError) -> Response:
    """JSON, but sent as text/plain: Toxiproxy writes it with Go's http.Error."""
    body = json.dumps({"error": error.message, "status": error.status}, separators=(",", ":")) + "\n"
    return Response(error.status, body.encode(), _TEXT, (("X-Content-Type-Options", "nosniff"),))


class ToxiproxyApi:
    def __init__(self, collection: ProxyCollection, metrics: MetricsRegistry) -> None:
        self.collection = collection
        self.metrics = metrics
        self.router = Router()
        routes: list[tuple[str, tuple[str, ...], Any]] = [
            ("/reset", ("POST",), self.reset),
            ("/proxies", ("GET",), self.proxy_index),
            ("/proxies", ("POST",), self.proxy_create),
            ("/populate", ("POST",), self.populate),
            ("/proxies/{proxy}", ("GET",), self.proxy_show),
            ("/proxies/{proxy}", ("POST", "PATCH"), self.proxy_update),
            ("/proxies/{proxy}", ("DELETE",), self.proxy_delete),
            ("/proxies/{proxy}/connections", ("GET",), self.connections),
            ("/proxies/{proxy}/toxics", ("GET",), self.toxic_index),
            ("/proxies/{proxy}/toxics", ("POST",), self.toxic_create),
            ("/proxies/{proxy}/toxics/{toxic}", ("GET",), self.toxic_show),
            ("/proxies/{proxy}/toxics/{toxic}", ("POST", "PATCH"), self.toxic_update),
            ("/proxies/{proxy}/toxics/{toxic}", ("DELETE",), self.toxic_delete),
            ("/version", ("GET",), self.version),
            ("/metrics", ("GET",), self.prometheus),
        ]
        for pattern, methods, handler in routes:
            self.router.add(pattern, methods, handler)

    async def handle(self, request: Request) -> Response:
        match = self.router.match(request.method, request.path)
        if match is None:
            return Response(404, b"404 page not found\n", _TEXT)
        if match.handler is None:
            return Response(405, b"", None, (("Allow", ", ".join(match.allowed)),))
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", _TEXT)  # keeps browser pages from driving the API
        try:
            response = await match.handler(request, match.params)
        except ApiError as exc:
            response = error_response(exc)
        logger.debug("%s %s -> %s", request.method, request.path, response.status)
        return response

    # -- proxies
    async def proxy_index(self, request: Request, params: Params) -> Response:
        return json_response(200, {name: proxy.to_json() for name, proxy in self.collection.all().items()})

    async def proxy_create(self, request: Request, params: Params) -> Response:
        return json_response(201, (await self.collection.create(request.body)).to_json())

    async def populate(self, request: Request, params: Params) -> Response:
        # Every populate answer, errors included, carries "proxies" and is application/json (api.go).
        try:
            done = await self.collection.populate(request.body)
        except PopulateError as exc:
            return json_response(exc.error.status, {"error": exc.error.message, "status": exc.error.status,
                                                    "proxies": [p.to_json() for p in exc.done] or None})
        except ApiError as exc:
            return json_response(exc.status, {"error": exc.message, "status": exc.status, "proxies": None})
        return json_response(201, {"proxies": [p.to_json() for p in done] or None})

    async def proxy_show(self, request: Request, params: Params) -> Response:
        return json_response(200, self.collection.get(params["proxy"]).to_json())

    async def proxy_update(self, request: Request, params: Params) -> Response:
        if request.method == "POST":
            logger.debug("POST /proxies/%s is deprecated (Toxiproxy 2.6): use PATCH", params["proxy"])
        return json_response(200, (await self.collection.update(params["proxy"], request.body)).to_json())

    async def proxy_delete(self, request: Request, params: Params) -> Response:
        await self.collection.remove(params["proxy"])
        return Response(204)

    async def connections(self, request: Request, params: Params) -> Response:
        return json_response(200, self.collection.get(params["proxy"]).describe_connections())

    async def reset(self, request: Request, params: Params) -> Response:
        await self.collection.reset()
        return Response(204)

    # -- toxics
    async def toxic_index(self, request: Request, params: Params) -> Response:
        toxics = self.collection.get(params["proxy"]).toxics.all()
        return json_response(200, [spec.to_json() for spec in toxics])

    async def toxic_create(self, request: Request, params: Params) -> Response:
        spec = self.collection.get(params["proxy"]).toxics.add(request.body)
        return json_response(200, spec.to_json())  # 200, not 201, as Toxiproxy

    async def toxic_show(self, request: Request, params: Params) -> Response:
        return json_response(200, self.collection.get(params["proxy"]).toxics.find(params["toxic"]).to_json())

    async def toxic_update(self, request: Request, params: Params) -> Response:
        spec = self.collection.get(params["proxy"]).toxics.update(params["toxic"], request.body)
        return json_response(200, spec.to_json())

    async def toxic_delete(self, request: Request, params: Params) -> Response:
        self.collection.get(params["proxy"]).toxics.remove(params["toxic"])
        return Response(204)

    # -- server
    async def version(self, request: Request, params: Params) -> Response:
        return Response(200, (json.dumps({"version": VERSION}) + "\n").encode(), "application/json;charset=utf-8")

    async def prometheus(self, request: Request, params: Params) -> Response:
        text = self.metrics.render(self.collection.live())
        return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
