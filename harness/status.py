"""What `rmqh status` shows: each node's liveness, which NameServers each broker is registered with, and
for replicated groups each replica's Raft state (role, term, leader, commit / applied / last index).

Every node is asked at its DIRECT listen address (host:port in the state file), not the advertised one, so
status still works while a proxy fault is active: NameServers for their cluster info, brokers for
GET_BROKER_RUNTIME_INFO (the raft* keys). Registrations are still matched by advertised address.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
    #: For replicated brokers: the raft* keys of its runtime info (raftRole, raftTerm, raftLeaderId, ...).
    raft: dict[str, str] = field(default_factory=dict)
    #: For brokers: why the runtime info could not be read, if it could not.
    raft_error: str | None = None
    #: For NameServers: broker address -> brokerId, as this NameServer lists them.
    lists: dict[str, int] = field(default_factory=dict)
    direct_addr: str = ""

    @property
    def broker_role(self) -> str:
        ids = set(self.registered_with.values())
        if not ids:
            return "-"
        return "master" if ids == {0} else "slave" if 0 not in ids else "mixed"


def _one_shot(addr: str, code: RequestCode, timeout: float) -> bytes:
    """One request on a connection of its own (status must not share state with anything else)."""
    conn = RemotingConnection(addr, connect_timeout=timeout)
    try:
        response = conn.invoke(RemotingCommand(code=code), timeout)
    finally:
        conn.close()
    if response.code != ResponseCode.SUCCESS:
        raise HarnessError(f"{addr}: {code.name} answered code {response.code}: {response.remark}")
    return response.body


def cluster_info(addr: str, timeout: float = 2.0) -> dict:
    """GET_BROKER_CLUSTER_INFO from one NameServer (bare numeric keys tolerated)."""
    body = _one_shot(addr, RequestCode.GET_BROKER_CLUSTER_INFO, timeout)
    return jsonbody.loads(body) if body else {}


def registrations(info: dict) -> dict[str, int]:
    """broker address -> brokerId, from one NameServer's cluster info."""
    out: dict[str, int] = {}
    for broker in (info.get("brokerAddrTable") or {}).values():
        for broker_id, addr in (broker.get("brokerAddrs") or {}).items():
            out[addr] = int(broker_id)
    return out


def runtime_info(addr: str, timeout: float = 2.0) -> dict[str, str]:
    """GET_BROKER_RUNTIME_INFO of one broker: its KVTable."""
    table = jsonbody.loads(_one_shot(addr, RequestCode.GET_BROKER_RUNTIME_INFO, timeout)).get("table") or {}
    return {str(k): str(v) for k, v in table.items()}


def gather(state: ClusterState) -> list[NodeStatus]:
    rows = [NodeStatus(n.node_id, n.role, n.group, n.addr, n.pid, bool(n.pid) and pid_alive(n.pid, n.create_time),
                       direct_addr=f"{n.host}:{n.port}") for n in state.nodes]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one slow node must not make the others wait
        list(pool.map(_probe, rows))
    by_addr = {row.addr: row for row in rows if row.role == "broker"}
    for row in rows:
        for addr, broker_id in row.lists.items():
            if addr in by_addr:
                by_addr[addr].registered_with[row.node_id] = broker_id
    return rows


def _probe(row: NodeStatus) -> None:
    """Ask one node what status shows of it (runs in a worker thread)."""
    if not row.alive:
        row.error = row.raft_error = "not running"
        return
    try:
        if row.role == "namesrv":
            row.lists = registrations(cluster_info(row.direct_addr))
        else:
            row.raft = {k: v for k, v in runtime_info(row.direct_addr).items() if k.startswith("raft")}
    except Exception as exc:  # a status view must show a broken node, not crash on it
        message = str(exc) or type(exc).__name__
        if row.role == "namesrv":
            row.error = message
        else:
            row.raft_error = message


@dataclass
class GroupRaft:
    """One replicated group as status shows it: the leader of the highest term seen, and that term."""

    group: str
    leader: str | None
    term: int
    replicas: list[NodeStatus]


def raft_groups(rows: list[NodeStatus]) -> list[GroupRaft]:
    """Replicated groups (brokers that report raft state), in the order their replicas appear."""
    groups: dict[str, list[NodeStatus]] = {}
    for row in rows:
        if row.role == "broker" and (row.raft or row.raft_error) and row.group:
            groups.setdefault(row.group, []).append(row)
    out = []
    for name, replicas in groups.items():
        if not any(r.raft for r in replicas):
            continue
        term = max(int(r.raft.get("raftTerm", 0)) for r in replicas if r.raft)
        leaders = [r.node_id for r in replicas if r.raft.get("raftRole") == "leader"
                   and int(r.raft.get("raftTerm", -1)) == term]
        out.append(GroupRaft(name, leaders[0] if leaders else None, term, replicas))
    return out
