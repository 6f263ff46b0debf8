"""A toxic as the API knows it (name, type, stream, toxicity, attributes) and the parsing of its JSON bodies."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chaos.proxy.decode import MISSING, expect_object, field, get_float32, get_str, parse_json
from chaos.proxy.errors import INVALID_STREAM, INVALID_TOXIC_TYPE, TOXIC_EXISTS
from chaos.proxy.stream import Direction, parse_direction
from chaos.proxy.toxics import Toxic, lookup

_STRUCT = "ToxicWrapper"


@dataclasses.dataclass(eq=False)
class ToxicSpec:
    """One toxic of one proxy. Links refer to it, so an update (a new ``toxic`` object) reaches them all."""

    name: str
    type: str
    stream: str
    """As sent (any letter case), since Toxiproxy echoes it unchanged."""
    direction: Direction
    toxicity: float
    """Chance that the toxic acts on a given connection direction, drawn when it starts there."""
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {"attributes": self.toxic.attributes(), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}


def parse_new_toxic(body: bytes, exists: Callable[[str], bool]) -> ToxicSpec:
    """A toxic from a create body, with Toxiproxy's defaults and its order of checks."""
    obj = expect_object(parse_json(body), "toxics.ToxicWrapper")
    name, type_name = get_str(obj, "name", _STRUCT), get_str(obj, "type", _STRUCT)
    stream, toxicity = get_str(obj, "stream", _STRUCT), get_float32(obj, "toxicity", _STRUCT)
    stream = "downstream" if stream is MISSING else stream
    direction = parse_direction(stream)
    if direction is None:
        raise INVALID_STREAM
    type_name = "" if type_name is MISSING else type_name
    if name is MISSING or not name:
        name = f"{type_name}_{stream}"
    toxic_class = lookup(type_name)
    if toxic_class is None:
        raise INVALID_TOXIC_TYPE
    if exists(name):
        raise TOXIC_EXISTS
    return ToxicSpec(name=name, type=type_name, stream=stream, direction=direction,
                     toxicity=1.0 if toxicity is MISSING else toxicity,
                     toxic=toxic_class.from_attributes(field(obj, "attributes")))


def parse_update(spec: ToxicSpec, body: bytes) -> tuple[Toxic, float]:
    """New attributes and toxicity from an update body: keys left out keep their values; type/stream/name are
    ignored. Nothing is applied until everything has been checked."""
    obj = expect_object(parse_json(body), "struct")
    toxicity = get_float32(obj, "toxicity", _STRUCT)
    toxic = type(spec.toxic).from_attributes(field(obj, "attributes"), base=spec.toxic)
    return toxic, spec.toxicity if toxicity is MISSING else toxicity
