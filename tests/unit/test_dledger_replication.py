"""The leader's per-follower replicator against a fake link and a fake node: pipelining, back-off on a
rejection, restart on a lost push, and answers of a forgotten epoch."""
from __future__ import annotations

from dataclasses import dataclass, field

from cluster.local import dledger_replication as repl
from cluster.local import dledger_wire as wire
from cluster.local.commitlog import Entry
from harness.remoting.frame import RemotingCommand


class FakeLog:
    def __init__(self, terms: list[int]) -> None:
        self.terms = terms

    @property
    def last_index(self) -> int:
        return len(self.terms)

    def term_at(self, index: int) -> int | None:
        return 0 if index == 0 else (self.terms[index - 1] if 1 <= index <= len(self.terms) else None)


@dataclass
class FakeNode:
    log: FakeLog
    self_id: str = "n0"
    commit_index: int = 0
    stepped_down_to: int | None = None
    advanced: int = 0

    def now(self) -> float:
        return 0.0

    def entries_for_send(self, index: int, max_bytes: int, max_count: int) -> list[Entry]:
        last = min(self.log.last_index, index + max_count - 1)
        return [Entry(i, self.log.terms[i - 1], b"p%d" % i, 0) for i in range(index, last + 1)]

    def step_down(self, term: int, leader_id: str | None) -> None:
        self.stepped_down_to = term

    def on_match_advanced(self) -> None:
        self.advanced += 1


@dataclass
class FakeLink:
    peer_id: str = "n1"
    connected: bool = True
    sent: list[tuple[wire.AppendRequest, object]] = field(default_factory=list)

    def request(self, cmd: RemotingCommand, callback: object, timeout: float) -> bool:
        self.sent.append((wire.parse_append_request(cmd), callback))
        return True


def answer(link: FakeLink, n: int, term: int, success: bool, index: int) -> None:
    req, callback = link.sent[n]
    resp = wire.append_response(wire.append_request(req), wire.AppendResponse(term, success, index))
    callback(resp)  # type: ignore[operator]


def make(terms: list[int], batch: int = 2) -> tuple[repl.Replicator, FakeNode, FakeLink]:
    node, link = FakeNode(FakeLog(terms)), FakeLink()
    replicator = repl.Replicator(node, link, term=max(terms), push_timeout=1.0)  # type: ignore[arg-type]
    replicator.batch_count = batch
    return replicator, node, link


def test_pushes_are_pipelined_up_to_the_inflight_limit() -> None:
    replicator, node, link = make([1] * 20)
    replicator.next_index = 1
    replicator.pump()
    assert len(link.sent) == repl.MAX_INFLIGHT
    assert [r.prev_index for r, _ in link.sent] == [0, 2, 4, 6]
    answer(link, 0, 1, True, 2)
    assert replicator.match_index == 2 and node.advanced == 1
    assert len(link.sent) == repl.MAX_INFLIGHT + 1  # the freed slot was refilled at once


def test_rejection_backs_off_to_the_hint_and_ignores_older_answers() -> None:
    replicator, _, link = make([1, 1, 2, 2, 3, 3, 3, 3, 3, 3])
    replicator.heartbeat_if_idle(now=10.0, interval=0.2)  # a new leader probes at its own end
    replicator.heartbeat_if_idle(now=20.0, interval=0.2)
    assert [(r.prev_index, len(r.payloads)) for r, _ in link.sent] == [(10, 0), (10, 0)]
    answer(link, 0, 3, False, 3)  # the follower's log diverges from index 3 on
    assert [r.prev_index for r, _ in link.sent[2:]] == [2, 4, 6, 8]
    assert link.sent[2][0].payloads == [b"p3", b"p4"]
    answer(link, 1, 3, False, 1)  # the second heartbeat belongs to the forgotten epoch: ignored
    assert len(link.sent) == 6 and replicator.next_index == 11
    answer(link, 2, 3, True, 4)
    assert replicator.match_index == 4


def test_lost_push_restarts_from_the_match_index() -> None:
    replicator, _, link = make([1] * 8)
    replicator.next_index = 1
    replicator.pump()
    answer(link, 0, 1, True, 2)
    sent_before = len(link.sent)
    _, callback = link.sent[1]
    callback(None)  # type: ignore[operator]  # timed out or the connection dropped
    assert replicator.next_index == 3 and len(link.sent) == sent_before  # resent on the next pump
    replicator.pump()
    assert [r.prev_index for r, _ in link.sent[sent_before:]] == [2, 4, 6]


def test_a_higher_term_in_an_answer_deposes_the_leader() -> None:
    replicator, node, link = make([1, 1])
    replicator.heartbeat_if_idle(now=10.0, interval=0.2)
    answer(link, 0, 5, False, 1)
    assert node.stepped_down_to == 5


def test_nothing_is_sent_while_disconnected_or_stopped() -> None:
    replicator, _, link = make([1, 1, 1])
    link.connected = False
    replicator.next_index = 1
    replicator.pump()
    link.connected = True
    replicator.stop()
    replicator.pump()
    replicator.heartbeat_if_idle(now=100.0, interval=0.2)
    assert link.sent == []
