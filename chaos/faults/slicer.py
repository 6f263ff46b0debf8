"""slicer [NODE... | all] [--average-size B] [--size-variation B] [--delay US]: cut every chunk on the
selected links into small pieces with a delay between them (tests frame reassembly and partial reads).
average-size 0 would crash a real Toxiproxy server, so it must be >= 1 and above the variation."""
from __future__ import annotations

from chaos.base import FaultContext, Plan, register
from chaos.faults._common import SELECTOR_PARAMS, LinkFault, stream_param
from chaos.params import Param
from harness.errors import ConfigError


@register
class Slicer(LinkFault):
    name = "slicer"
    summary = "slice the selected links' data into small delayed pieces"
    toxic = "slicer"
    params = (Param("average_size", int, "bytes per piece", 64, min=1, max=1_000_000),
              Param("size_variation", int, "+- bytes", 0, min=0, max=1_000_000),
              Param("delay", int, "microseconds between pieces", 1000, min=0, max=60_000_000),
              *SELECTOR_PARAMS, stream_param())

    def plan(self, ctx: FaultContext) -> Plan:
        if int(self.values["size_variation"]) >= int(self.values["average_size"]):
            raise ConfigError(f"--size-variation: {self.values['size_variation']} must be below --average-size "
                              f"{self.values['average_size']}")
        return super().plan(ctx)

    def attributes(self) -> dict[str, int]:
        return {k: int(self.values[k]) for k in ("average_size", "size_variation", "delay")}
