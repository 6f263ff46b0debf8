"""The toxics of one proxy, in order per direction, and how changes reach its open connections.

Every change applies to live connections at once (as in Toxiproxy): an added toxic starts on each open pipe
of its direction, an update restarts it there (flushing anything the old settings held, drawing toxicity
again), and a removal stops it (a removed timeout closes the connections it held).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from chaos.proxy.errors import TOXIC_NOT_FOUND
from chaos.proxy.pipe import Pipe
from chaos.proxy.stream import Direction
from chaos.proxy.toxic_spec import ToxicSpec, parse_new_toxic, parse_update

PipeSource = Callable[[Direction], Iterable[Pipe]]
"""The open pipes of one direction of the proxy."""


class ToxicChain:
    def __init__(self, pipes: PipeSource) -> None:
        self._pipes = pipes
        self._chains: dict[Direction, list[ToxicSpec]] = {d: [] for d in Direction}

    def all(self) -> list[ToxicSpec]:
        """Upstream toxics first, then downstream, each in the order added (Toxiproxy's order)."""
        return self._chains[Direction.UPSTREAM] + self._chains[Direction.DOWNSTREAM]

    def snapshot(self, direction: Direction) -> list[ToxicSpec]:
        return list(self._chains[direction])

    def has_type(self, type_name: str) -> bool:
        return any(spec.type == type_name for spec in self.all())

    def find(self, name: str) -> ToxicSpec:
        for spec in self.all():
            if spec.name == name:
                return spec
        raise TOXIC_NOT_FOUND

    def _exists(self, name: str) -> bool:
        return any(spec.name == name for spec in self.all())

    def add(self, body: bytes) -> ToxicSpec:
        spec = parse_new_toxic(body, self._exists)  # names are unique across both directions
        self._chains[spec.direction].append(spec)
        for pipe in list(self._pipes(spec.direction)):
            pipe.add_stage(spec)
        return spec

    def update(self, name: str, body: bytes) -> ToxicSpec:
        spec = self.find(name)
        spec.toxic, spec.toxicity = parse_update(spec, body)
        for pipe in list(self._pipes(spec.direction)):
            pipe.restart_stage(spec)
        return spec

    def remove(self, name: str) -> None:
        self._remove(self.find(name))

    def clear(self) -> None:
        for spec in self.all():
            self._remove(spec)

    def _remove(self, spec: ToxicSpec) -> None:
        self._chains[spec.direction].remove(spec)
        for pipe in list(self._pipes(spec.direction)):
            pipe.remove_stage(spec)
