"""bandwidth [NODE... | all] --rate KB/S: cap the selected links' throughput (KB = 1000 bytes)."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import SELECTOR_PARAMS, LinkFault, stream_param
from chaos.params import Param


@register
class Bandwidth(LinkFault):
    name = "bandwidth"
    summary = "limit the selected links to a rate in KB/s"
    toxic = "bandwidth"
    params = (Param("rate", int, "KB/s (1 KB = 1000 bytes)", min=1, max=10_000_000),
              *SELECTOR_PARAMS, stream_param())

    def attributes(self) -> dict[str, int]:
        return {"rate": int(self.values["rate"])}
