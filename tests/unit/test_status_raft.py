"""`rmqh status`: grouping the replicas' raft runtime keys into one line of leader and term per group."""
from __future__ import annotations

from harness.status import NodeStatus, raft_groups


def replica(node_id: str, role: str, term: int, group: str = "broker-a") -> NodeStatus:
    row = NodeStatus(node_id, "broker", group, f"127.0.0.1:{len(node_id)}", 1, True)
    row.raft = {"raftRole": role, "raftTerm": str(term), "raftCommitIndex": "5"}
    return row


def test_the_leader_of_the_highest_term_leads_the_group() -> None:
    stale = replica("broker-a-0", "leader", 2)  # an isolated old leader that has not noticed yet
    rows = [stale, replica("broker-a-1", "leader", 3), replica("broker-a-2", "follower", 3),
            NodeStatus("ns-0", "namesrv", "", "127.0.0.1:9876", 1, True)]
    [group] = raft_groups(rows)
    assert (group.group, group.leader, group.term) == ("broker-a", "broker-a-1", 3)
    assert [r.node_id for r in group.replicas] == ["broker-a-0", "broker-a-1", "broker-a-2"]


def test_dead_replicas_stay_listed_and_single_replica_groups_are_left_out() -> None:
    dead = NodeStatus("broker-a-2", "broker", "broker-a", "127.0.0.1:3", 0, False)
    dead.raft_error = "not running"
    single = NodeStatus("broker-b-0", "broker", "broker-b", "127.0.0.1:4", 1, True)  # no raft keys
    rows = [replica("broker-a-0", "candidate", 4), replica("broker-a-1", "follower", 3), dead, single]
    [group] = raft_groups(rows)
    assert group.leader is None and group.term == 4 and group.replicas[-1] is dead
