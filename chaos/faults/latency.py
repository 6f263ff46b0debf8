"""latency [NODE... | all] --latency MS [--jitter MS]: delay every chunk on the selected links by
latency +- jitter (uniform), counted from when the chunk was read, so pipelined data does not pile up delay.
On --stream both a request/response pair is delayed twice."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import SELECTOR_PARAMS, LinkFault, stream_param
from chaos.params import Param


@register
class Latency(LinkFault):
    name = "latency"
    summary = "add latency (with jitter) to the selected links"
    toxic = "latency"
    params = (Param("latency", int, "delay in ms", min=0, max=600_000),
              Param("jitter", int, "+- this many ms, uniform", 0, min=0, max=600_000),
              *SELECTOR_PARAMS, stream_param())

    def attributes(self) -> dict[str, int]:
        return {"latency": int(self.values["latency"]), "jitter": int(self.values["jitter"])}
