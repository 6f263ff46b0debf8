"""What `rmqh status` shows: each node's liveness, and which NameServers each broker is registered with."""
from __future__ import annotations

from dataclasses import dataclass, field

from cluster.local.process import pid_alive
from harness.errors import HarnessError
from harness.remoting import jsonbody
from harness.remoting.client import RemotingConnection
from harness.remoting.codes import RequestCode, ResponseCode
from harness.remoting.frame import RemotingCommand
from harness.state import ClusterState


@dataclass
class NodeStatus:
    node_id: str
    role: str
    group: str
    addr: str
    pid: int
    alive: bool
    #: For brokers: NameServer ids that list this broker's address, with the brokerId each gives it.
    registered_with: dict[str, int] = field(default_factory=dict)
    #: For NameServers: None when it answered, else why not.
    error: str | None = None

    @property
    def broker_role(self) -> str:
        ids = set(self.registered_with.values())
        if not ids:
            return "-"
        return "master" if ids == {0} else "slave" if 0 not in ids else "mixed"


def cluster_info(addr: str, timeout: float = 2.0) -> dict:
    """GET_BROKER_CLUSTER_INFO from one NameServer (bare numeric keys tolerated)."""
    conn = RemotingConnection(addr, connect_timeout=timeout)
    try:
        response = conn.invoke(RemotingCommand(code=RequestCode.GET_BROKER_CLUSTER_INFO), timeout)
    finally:
        conn.close()
    if response.code != ResponseCode.SUCCESS:
        raise HarnessError(f"{addr}: cluster info answered code {response.code}: {response.remark}")
    return jsonbody.loads(response.body) if response.body else {}


def registrations(info: dict) -> dict[str, int]:
    """broker address -> brokerId, from one NameServer's cluster info."""
    out: dict[str, int] = {}
    for broker in (info.get("brokerAddrTable") or {}).values():
        for broker_id, addr in (broker.get("brokerAddrs") or {}).items():
            out[addr] = int(broker_id)
    return out


def gather(state: ClusterState) -> list[NodeStatus]:
    rows = [NodeStatus(n.node_id, n.role, n.group, n.addr, n.pid, bool(n.pid) and pid_alive(n.pid, n.create_time))
            for n in state.nodes]
    by_addr = {row.addr: row for row in rows if row.role == "broker"}
    for row in rows:
        if row.role != "namesrv":
            continue
        if not row.alive:
            row.error = "not running"
            continue
        try:
            regs = registrations(cluster_info(row.addr))
        except Exception as exc:  # a status view must show a broken node, not crash on it
            row.error = str(exc) or type(exc).__name__
            continue
        for addr, broker_id in regs.items():
            if addr in by_addr:
                by_addr[addr].registered_with[row.node_id] = broker_id
    return rows
