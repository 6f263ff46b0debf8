"""noop: passes everything through unchanged (Toxiproxy allows it; useful to test the API itself)."""
from __future__ import annotations

import dataclasses

from chaos.proxy.toxics.base import Toxic, register


@register
@dataclasses.dataclass
class Noop(Toxic):
    type_name = "noop"
