"""Listen and upstream addresses: parsing ``host:port`` as Go does, resolving, binding, formatting.

Deviation from Toxiproxy, on purpose: an empty host (``":8474"`` or no listen address at all) means
127.0.0.1, not every interface. Binding beyond loopback takes an explicit address such as ``0.0.0.0:P``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket

from chaos.proxy.errors import ApiError, internal

DEFAULT_HOST = "127.0.0.1"


class AddressError(ValueError):
    """An address that cannot be used; the message follows Go's ``net`` errors."""


def split_host_port(addr: str) -> tuple[str, int]:
    """``"h:p"`` or ``"[v6]:p"`` into host and port (0 when empty)."""
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep:
            raise AddressError(f"address {addr}: missing ']' in address")
        if not rest.startswith(":"):
            raise AddressError(f"address {addr}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise AddressError(f"address {addr}: missing port in address")
        if ":" in host:
            raise AddressError(f"address {addr}: too many colons in address")
    return host, _port(addr, port_text)


def _port(addr: str, text: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or not text.isascii():
        raise AddressError(f"address {addr}: unknown port")
    port = int(text)
    if port > 65535:
        raise AddressError(f"address {addr}: invalid port")
    return port


def format_address(sockaddr: tuple[object, ...]) -> str:
    host, port = str(sockaddr[0]), int(str(sockaddr[1]))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(addr: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """The address to bind for ``addr``; a name such as ``localhost`` resolves to its first IPv4 address when it
    has one (as Go does)."""
    host, port = split_host_port(addr) if addr else ("", 0)  # no address at all: any port (as net.Listen)
    host = host or DEFAULT_HOST
    try:
        ip = ipaddress.ip_address(host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), (host, port)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


async def normalize(addr: str) -> str:
    """The resolved form of a listen address, to compare it with a proxy's (populate and updates)."""
    try:
        _, sockaddr = await resolve(addr)
    except AddressError as exc:
        raise internal(str(exc)) from None
    return format_address(sockaddr)


async def open_listener(addr: str) -> socket.socket:
    """A bound, listening, non-blocking socket for ``addr``; ApiError 500 with Go's wording if that fails."""
    try:
        family, sockaddr = await resolve(addr)
    except AddressError as exc:
        raise internal(f"listen tcp: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As Go does: a disabled-then-enabled proxy must get its port back despite TIME_WAIT connections.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _listen_error(addr, exc) from None
    return sock


def _listen_error(addr: str, exc: OSError) -> ApiError:
    reason = (exc.strerror or str(exc)).lower()
    return internal(f"listen tcp {addr}: bind: {reason}")


def upstream_host_port(upstream: str) -> tuple[str, int]:
    """Where to dial; an empty host means this machine, as in Go."""
    host, port = split_host_port(upstream)
    return host or DEFAULT_HOST, port
