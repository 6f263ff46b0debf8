"""What every toxic is: plain integer attributes plus hooks that decide what happens to one direction's data.

A toxic object is the shared configuration (what the API shows); what a toxic does to one connection runs
against a :class:`Link`, which holds that connection's state, timers and interruptible sleeps. Toxics are
registered by their stable Toxiproxy type name; the registry holds classes and the API builds a fresh
instance for every create or update, so a running link never sees a half-applied change.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

from chaos.proxy.decode import MISSING, get_int, json_kind
from chaos.proxy.errors import bad_body
from chaos.proxy.stream import Chunk

Emit = Callable[[Chunk], Awaitable[None]]
"""Pass a chunk on to the next toxic in the chain (or to the socket, after the last one)."""
EmitEof = Callable[[], Awaitable[None]]
"""Pass the end of the stream on."""


class Link(Protocol):
    """One toxic running on one direction of one connection: what a toxic may see and do there."""

    state: Any
    """Per-connection state from :meth:`Toxic.new_state`; it survives updates of the toxic (limit_data counts)."""

    @property
    def rng(self) -> random.Random: ...

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> bool:
        """Wait; False if the toxic was updated or removed meanwhile (then flush, never drop, what is held)."""

    async def sleep_until(self, when: float) -> bool: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        """A timer that is cancelled when the toxic stops on this link."""

    def close_link(self) -> None:
        """Close both sockets of the connection (FIN after pending data)."""

    def reset_link(self) -> None:
        """Close both sockets at once, dropping pending data (an RST where SO_LINGER 0 was set at accept)."""


@dataclasses.dataclass
class Toxic:
    """Base of all toxics. Subclasses are dataclasses whose int fields are the JSON attributes."""

    type_name: ClassVar[str] = ""
    go_int: ClassVar[str] = "int64"
    """The Go type of the attributes, named in type errors as Toxiproxy does."""

    @classmethod
    def from_attributes(cls: type[T], attributes: Any, base: T | None = None) -> T:
        """Build from a JSON ``attributes`` value; keys left out keep ``base``'s values (or 0)."""
        values = dataclasses.asdict(base) if base is not None else {}
        if attributes is not MISSING:
            if not isinstance(attributes, dict):
                raise bad_body(f"json: cannot unmarshal {json_kind(attributes)} into Go struct field "
                               f".attributes of type toxics.{cls.__name__}")
            for f in dataclasses.fields(cls):
                value = get_int(attributes, f.name, "attributes", cls.go_int)
                if value is not MISSING:
                    values[f.name] = value
        toxic = cls(**values)
        toxic.validate()
        return toxic

    def attributes(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise a 400 ApiError for values that would break the proxy (Toxiproxy accepts them and crashes)."""

    def new_state(self) -> Any:
        return None

    def on_start(self, link: Link) -> None:
        """The toxic starts on a link: at accept, when added, and again after each update."""

    def on_removed(self, link: Link) -> None:
        """The toxic is removed (or /reset) while the link is open."""

    async def pipe(self, link: Link, chunk: Chunk, emit: Emit) -> None:
        await emit(chunk)

    async def pipe_eof(self, link: Link, emit_eof: EmitEof) -> None:
        await emit_eof()


T = TypeVar("T", bound=Toxic)

_REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[T]) -> type[T]:
    """Class decorator: make a toxic available under its ``type_name``."""
    if not cls.type_name or cls.type_name in _REGISTRY:
        raise ValueError(f"toxic type name {cls.type_name!r} is empty or taken")
    _REGISTRY[cls.type_name] = cls
    return cls


def lookup(type_name: str) -> type[Toxic] | None:
    return _REGISTRY.get(type_name)


def type_names() -> list[str]:
    return sorted(_REGISTRY)
