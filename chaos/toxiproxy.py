"""Typed client for a Toxiproxy 2.x server (the real one or the built-in ``chaos.proxy``), and a way to run one.

Calls go through the PyPI client ``toxiproxy-python`` 0.1.1 where it has them, and through ``requests`` for
what it lacks (toxic updates, server-side /populate, stats, /metrics, connections). That library has no
timeouts, reports a 500 as a ``KeyError`` and returns None or False for some failures; here every call is
bounded by ``timeout`` seconds and every failure raises :class:`ToxiproxyError` with the HTTP status (None
when there was no answer) and the server's message.

The library keeps the server address in class attributes (process-wide). Calls to one address may run
concurrently; a call to another address waits until those are done (see ``_LibraryAddress``).

To run a server (``toxiproxy-server`` from PATH, else the built-in one) see ``chaos.proxy.launcher``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar

import requests
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.errors import HarnessError

DEFAULT_TIMEOUT = 10.0
Stream = Literal["upstream", "downstream"]
R = TypeVar("R")


class ToxiproxyError(HarnessError):
    """A Toxiproxy API call failed. ``status`` is the HTTP status, or None if the server did not answer."""

    def __init__(self, status: int | None, message: str, *, proxy: str | None = None,
                 toxic: str | None = None) -> None:
        self.status = status
        self.message = message
        self.proxy = proxy
        self.toxic = toxic
        where = "".join(f" {kind} {name!r}" for kind, name in (("proxy", proxy), ("toxic", toxic)) if name)
        super().__init__(f"toxiproxy{where}: {status if status is not None else 'no answer'}: {message}")


@dataclasses.dataclass(frozen=True)
class ProxySpec:
    """A proxy to create or populate."""

    name: str
    upstream: str
    """``host:port`` the proxy forwards to."""
    listen: str = "127.0.0.1:0"
    """``ip:port`` to listen on; port 0 picks a free port (and populate keeps it on later calls)."""
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str
    """Resolved ``ip:port`` once the proxy has listened."""
    upstream: str
    enabled: bool


@dataclasses.dataclass(frozen=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class ByteCount:
    received: int
    """Bytes the proxy read from this direction's source."""
    sent: int
    """Bytes the proxy wrote to this direction's sink."""


@dataclasses.dataclass(frozen=True)
class ProxyStats:
    proxy: str
    upstream: ByteCount
    """Client -> server bytes."""
    downstream: ByteCount
    """Server -> client bytes."""
    active_connections: int | None = None
    """Only the built-in server reports it."""


@dataclasses.dataclass(frozen=True)
class ConnectionInfo:
    client: str
    """The client's ``ip:port`` as the proxy sees it."""
    upstream_local: str | None
    """The proxy's own ``ip:port`` on the upstream connection (what the upstream sees as its peer)."""


class _LibraryAddress:
    """Guards toxiproxy-python's process-wide server address (``APIConsumer.host``/``port``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._current: tuple[str, int] | None = None

    @contextlib.contextmanager
    def use(self, host: str, port: int, timeout: float) -> Iterator[None]:
        address = (host, port)
        with self._cond:
            if not self._cond.wait_for(lambda: self._active == 0 or self._current == address, timeout):
                raise TimeoutError(f"a stalled call to Toxiproxy at {self._current} holds the client library")
            # Set on every call, not only on change: other code may have moved the library meanwhile.
            toxiproxy.Toxiproxy().update_api_consumer(host, port)
            self._current = address
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()


_ADDRESS = _LibraryAddress()
_METRIC = re.compile(r"^toxiproxy_proxy_(received|sent)_bytes_total\{(.*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ToxiproxyClient:
    """One Toxiproxy server. Safe to share between threads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.url = f"http://{host}:{port}"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    # -- server
    def version(self) -> str:
        raw: bytes | None = self._call("version", lambda: toxiproxy.Toxiproxy().version())
        if raw is None:
            raise ToxiproxyError(None, f"nothing listens on {self.host}:{self.port}")
        text = raw.decode(errors="replace").strip()
        try:
            return str(json.loads(text)["version"])
        except (ValueError, KeyError, TypeError):
            return text  # servers before 2.7.0 send the bare version

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        if not self._call("reset", lambda: toxiproxy.Toxiproxy().reset()):
            self._request("POST", "/reset")  # the library only says False; ask again to learn why

    # -- proxies
    def proxies(self) -> dict[str, ProxyInfo]:
        found = self._call("list proxies", lambda: toxiproxy.Toxiproxy().proxies())
        return {name: _proxy_info(vars(proxy)) for name, proxy in found.items()}

    def proxy(self, name: str) -> ProxyInfo:
        found = self._call("get proxy", lambda: toxiproxy.Toxiproxy().get_proxy(name), proxy=name)
        if found is None:
            raise ToxiproxyError(404, "proxy not found", proxy=name)
        return _proxy_info(vars(found))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> ProxyInfo:
        def create() -> toxiproxy.Proxy:
            return toxiproxy.Toxiproxy().create(upstream, name, listen=listen, enabled=enabled)

        try:
            return _proxy_info(vars(self._call("create proxy", create, proxy=name)))
        except _Unreadable:
            # A 500 (e.g. the listen port is taken) surfaces in the library as KeyError. The proxy was not
            # stored, so sending the request again is safe and gives the server's message (or, if the port
            # has just been freed, the proxy).
            body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
            return _proxy_info(self._request("POST", "/proxies", json=body, proxy=name).json())

    def populate(self, proxies: Iterable[ProxySpec | Mapping[str, Any]]) -> list[ProxyInfo]:
        """Create or replace proxies with the server's POST /populate; proxies that are unchanged keep their
        toxics and state. A ``listen`` port of 0 keeps an existing proxy's port, so repeated calls are no-ops."""
        specs = [spec if isinstance(spec, ProxySpec) else ProxySpec(**spec) for spec in proxies]
        current = self.proxies()
        body = [dataclasses.asdict(_keep_port(spec, current.get(spec.name))) for spec in specs]
        answer = self._request("POST", "/populate", json=body).json()
        return [_proxy_info(item) for item in answer.get("proxies") or []]

    def delete_proxy(self, name: str) -> None:
        self._call("delete proxy", lambda: _library_proxy(name).destroy(), proxy=name)

    def enable(self, name: str) -> None:
        self._set_enabled(name, True)

    def disable(self, name: str) -> None:
        """Stop listening and close every connection of the proxy (clients see EOF, new ones are refused)."""
        self._set_enabled(name, False)

    @contextlib.contextmanager
    def down(self, name: str) -> Iterator[None]:
        """The proxy is disabled inside the block and enabled again however the block ends."""
        self.disable(name)
        try:
            yield
        finally:
            self.enable(name)

    def _set_enabled(self, name: str, enabled: bool) -> None:
        proxy = _library_proxy(name)
        self._call("enable proxy" if enabled else "disable proxy",
                   proxy.enable if enabled else proxy.disable, proxy=name)
        # The library discards the answer, so a failed enable (port taken: 500) looks like a success. Check,
        # and if the state is wrong repeat the (idempotent) change directly to get the server's error.
        state = self._request("GET", _path("proxies", name), proxy=name).json()
        if state.get("enabled") is not enabled:
            state = self._request("PATCH", _path("proxies", name), json={"enabled": enabled}, proxy=name).json()
            if state.get("enabled") is not enabled:
                raise ToxiproxyError(None, f"the server keeps enabled={state.get('enabled')}", proxy=name)

    # -- toxics
    def add_toxic(self, proxy: str, type: str, stream: Stream = "downstream",
                  attributes: Mapping[str, int] | None = None, toxicity: float = 1.0,
                  name: str | None = None) -> ToxicInfo:
        """Add a toxic; it acts on open connections as well as new ones. The name defaults to ``type_stream``."""
        info = ToxicInfo(name or f"{type}_{stream}", type, stream, toxicity, dict(attributes or {}))

        def add() -> None:
            _library_proxy(proxy).add_toxic(type=type, stream=stream, name=info.name, toxicity=toxicity,
                                            attributes=dict(info.attributes))

        self._call("add toxic", add, proxy=proxy, toxic=info.name)
        return info

    def update_toxic(self, proxy: str, name: str, attributes: Mapping[str, int] | None = None,
                     toxicity: float | None = None) -> ToxicInfo:
        """Change some attributes and/or the toxicity; what is left out stays as it is."""
        body: dict[str, Any] = {"attributes": dict(attributes or {})}
        if toxicity is not None:
            body["toxicity"] = toxicity
        answer = self._request("PATCH", _path("proxies", proxy, "toxics", name), json=body, proxy=proxy, toxic=name)
        return _toxic_info(answer.json())

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("remove toxic", lambda: _library_proxy(proxy).destroy_toxic(name), proxy=proxy, toxic=name)

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        found = self._call("list toxics", lambda: _library_proxy(proxy).toxics(), proxy=proxy)
        return [_toxic_info(vars(toxic)) for toxic in found.values()]

    # -- counters and connections (not in the library)
    def stats(self, proxy: str) -> ProxyStats:
        """Byte counters of one proxy: live from the built-in server, from /metrics otherwise."""
        data = self._request("GET", _path("proxies", proxy), proxy=proxy).json()
        stats = data.get("stats")
        if not isinstance(stats, dict):
            return self.metrics().get(proxy, ProxyStats(proxy, ByteCount(0, 0), ByteCount(0, 0)))
        return ProxyStats(proxy, _bytes(stats["upstream"]), _bytes(stats["downstream"]),
                          stats.get("active_connections"))

    def metrics(self) -> dict[str, ProxyStats]:
        """Byte counters of every proxy from GET /metrics (toxiproxy-server needs ``-proxy-metrics``; it only
        counts a connection's bytes when the connection closes). Series of one proxy name are summed."""
        totals: dict[tuple[str, str, str], int] = {}
        for line in self._request("GET", "/metrics").text.splitlines():
            match = _METRIC.match(line)
            if match:
                labels = dict(_LABEL.findall(match.group(2)))
                key = (labels.get("proxy", ""), labels.get("direction", ""), match.group(1))
                totals[key] = totals.get(key, 0) + int(float(match.group(3)))
        return {p: ProxyStats(p, _count(totals, p, "upstream"), _count(totals, p, "downstream"))
                for p in sorted({proxy for proxy, _, _ in totals})}

    def connections(self, proxy: str) -> list[ConnectionInfo]:
        """Open connections of a proxy (built-in server only; toxiproxy-server answers 404)."""
        answer = self._request("GET", _path("proxies", proxy, "connections"), proxy=proxy).json()
        return [ConnectionInfo(item["client"], item.get("upstream_local")) for item in answer]

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- plumbing
    def _call(self, what: str, fn: Callable[[], R], *, proxy: str | None = None, toxic: str | None = None) -> R:
        """Run a library call in a daemon thread and give up after ``timeout`` (the library cannot time out;
        a daemon thread cannot keep the process from exiting)."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            try:
                with _ADDRESS.use(self.host, self.port, self.timeout):
                    future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

        threading.Thread(target=run, name=f"toxiproxy {what}", daemon=True).start()
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            raise ToxiproxyError(None, f"{what}: no answer from {self.url} within {self.timeout:g} s",
                                 proxy=proxy, toxic=toxic) from None
        except Exception as exc:
            raise _map_library_error(exc, what, self.url, proxy, toxic) from exc

    def _request(self, method: str, path: str, *, json: Any = None, proxy: str | None = None,
                 toxic: str | None = None) -> requests.Response:
        try:
            response = self._session().request(method, self.url + path, json=json, timeout=self.timeout)
        except requests.Timeout:
            raise ToxiproxyError(None, f"{method} {path}: no answer within {self.timeout:g} s",
                                 proxy=proxy, toxic=toxic) from None
        except requests.RequestException as exc:
            raise ToxiproxyError(None, f"cannot reach {self.url}: {exc}", proxy=proxy, toxic=toxic) from None
        if response.status_code >= 400:
            raise ToxiproxyError(response.status_code, _message(response.content), proxy=proxy, toxic=toxic)
        return response

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:  # requests.Session is not thread-safe: one per thread
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Unreadable(ToxiproxyError):
    """The library choked on an error answer it does not know (a 500 shows up as KeyError)."""


def _map_library_error(exc: Exception, what: str, url: str, proxy: str | None, toxic: str | None) -> ToxiproxyError:
    if isinstance(exc, ToxiproxyError):
        return exc
    for kind, status in ((ProxyExists, 409), (NotFound, 404), (InvalidToxic, 400)):
        if isinstance(exc, kind):
            raw = exc.args[0] if exc.args else b""
            return ToxiproxyError(status, _message(raw), proxy=proxy, toxic=toxic)
    if isinstance(exc, requests.RequestException):
        return ToxiproxyError(None, f"{what}: cannot reach {url}: {exc}", proxy=proxy, toxic=toxic)
    if isinstance(exc, TimeoutError):
        return ToxiproxyError(None, f"{what}: {exc}", proxy=proxy, toxic=toxic)
    return _Unreadable(None, f"{what}: unreadable answer from {url} ({type(exc).__name__}: {exc})",
                       proxy=proxy, toxic=toxic)


def _message(raw: bytes | str) -> str:
    """The ``error`` of a Toxiproxy error body, else the body as text."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or "(empty answer)"


def _path(*segments: str) -> str:
    """An API path with each segment quoted (a proxy name may hold any character but '/')."""
    return "".join("/" + urllib.parse.quote(segment, safe="") for segment in segments)


def _library_proxy(name: str) -> toxiproxy.Proxy:
    """The library's Proxy methods only use the name, so no download of every proxy is needed."""
    return toxiproxy.Proxy(name=name, upstream="", enabled=True, listen="")


def _proxy_info(data: Mapping[str, Any]) -> ProxyInfo:
    return ProxyInfo(str(data["name"]), str(data["listen"]), str(data["upstream"]), bool(data["enabled"]))


def _toxic_info(data: Mapping[str, Any]) -> ToxicInfo:
    return ToxicInfo(str(data["name"]), str(data["type"]), str(data["stream"]), float(data["toxicity"]),
                     dict(data.get("attributes") or {}))


def _bytes(data: Mapping[str, Any]) -> ByteCount:
    return ByteCount(int(data["received_bytes"]), int(data["sent_bytes"]))


def _count(totals: Mapping[tuple[str, str, str], int], proxy: str, direction: str) -> ByteCount:
    return ByteCount(totals.get((proxy, direction, "received"), 0), totals.get((proxy, direction, "sent"), 0))


def _keep_port(spec: ProxySpec, existing: ProxyInfo | None) -> ProxySpec:
    """Ask for port 0 and get the existing proxy's port: otherwise the server sees a changed listen address
    and replaces the proxy (dropping its toxics and connections) on every populate."""
    if existing is None or existing.upstream != spec.upstream or not spec.listen.endswith(":0"):
        return spec
    if _loopback_alias(spec.listen.rsplit(":", 1)[0]) != _loopback_alias(existing.listen.rsplit(":", 1)[0]):
        return spec
    return dataclasses.replace(spec, listen=existing.listen)


def _loopback_alias(host: str) -> str:
    return "127.0.0.1" if host in ("", "localhost") else host

