"""reset-peer [NODE... | all] [--timeout MS]: when data next flows on a selected link, wait the timeout and
close the connection, dropping that data. Connections accepted while the toxic is in place get a real RST;
older ones a FIN. Clients reconnect and fail again while it lasts."""
from __future__ import annotations

from chaos.base import register
from chaos.faults._common import SELECTOR_PARAMS, LinkFault, stream_param
from chaos.params import Param


@register
class ResetPeer(LinkFault):
    name = "reset-peer"
    summary = "reset connections on the selected links when data flows"
    toxic = "reset_peer"
    params = (Param("timeout", int, "ms to wait before the reset", 0, min=0, max=600_000),
              *SELECTOR_PARAMS, stream_param("upstream"))

    def attributes(self) -> dict[str, int]:
        return {"timeout": int(self.values["timeout"])}
