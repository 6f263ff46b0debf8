"""Inbound peer requests: append (push and heartbeat), vote and pre-vote, answered synchronously.

Each handler parses the whole frame before touching any state, so a malformed frame is answered with an
error and changes nothing. Requests on one connection are handled in arrival order, which is what lets the
leader pipeline pushes.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cluster.local import dledger_rules as rules
from cluster.local import dledger_wire as wire
from harness.remoting.frame import RemotingCommand

if TYPE_CHECKING:
    from cluster.local.dledger import RaftNode
    from cluster.local.server import Connection, RemotingServer

logger = logging.getLogger(__name__)


class PeerHandlers:
    """The request handlers of one node's peer server."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node

    def register(self, server: RemotingServer) -> None:
        server.register(wire.APPEND, self.on_append)
        server.register(wire.VOTE, self.on_vote)
        server.register(wire.PRE_VOTE, self.on_pre_vote)

    def _reject_frame(self, cmd: RemotingCommand, conn: Connection, exc: Exception) -> RemotingCommand:
        logger.warning("raft %s: malformed request %s from %s: %s", self.node.self_id, cmd.code, conn.peer, exc)
        return wire.error_response(cmd, f"malformed request: {exc}")

    # -- append
    def on_append(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        node = self.node
        try:
            req = wire.parse_append_request(cmd)
            if req.leader_id not in node.peers or req.leader_id == node.self_id:
                raise wire.WireError(f"unknown leader {req.leader_id!r}")
        except wire.WireError as exc:
            return self._reject_frame(cmd, conn, exc)
        if req.term < node.term:
            return self._append_answer(cmd, False, node.log.last_index + 1)
        if not node.follow(req.term, req.leader_id):
            return self._append_answer(cmd, False, node.log.last_index + 1)
        return self._apply(cmd, req)

    def _apply(self, cmd: RemotingCommand, req: wire.AppendRequest) -> RemotingCommand:
        node, log = self.node, self.node.log
        prev_term = log.term_at(req.prev_index)
        if prev_term is None or prev_term != req.prev_term:
            hint = rules.conflict_hint(req.prev_index, log.last_index, node.commit_index, log.term_at)
            return self._append_answer(cmd, False, hint)
        first_new = self._skip_present(req)
        if first_new is None:
            return self._append_answer(cmd, False, node.log.last_index + 1)
        if first_new < len(req.payloads):
            base = req.prev_index + 1
            log.append_entries([(base + i, req.terms[i], req.payloads[i])
                                for i in range(first_new, len(req.payloads))])
        matched = req.prev_index + len(req.payloads)
        node.learn_commit(min(req.commit, matched))
        return self._append_answer(cmd, True, matched)

    def _skip_present(self, req: wire.AppendRequest) -> int | None:
        """How many leading entries of the push we already hold; a conflicting entry and everything after
        it is truncated first (Raft §5.3). None if that would cut a committed entry (a broken leader)."""
        log = self.node.log
        i, index = 0, req.prev_index + 1
        while i < len(req.payloads) and index <= log.last_index:
            if log.term_at(index) != req.terms[i]:
                if index <= self.node.commit_index:
                    logger.error("raft %s: leader %s conflicts with committed index %d; refusing",
                                 self.node.self_id, req.leader_id, index)
                    return None
                self.node.truncate_log(index)
                break
            i, index = i + 1, index + 1
        return i

    def _append_answer(self, cmd: RemotingCommand, success: bool, index: int) -> RemotingCommand:
        return wire.append_response(cmd, wire.AppendResponse(term=self.node.term, success=success, index=index))

    # -- votes
    def on_vote(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        node = self.node
        try:
            req = self._parse_vote(cmd)
        except wire.WireError as exc:
            return self._reject_frame(cmd, conn, exc)
        if req.term > node.term:
            node.step_down(req.term, None)
        granted = rules.grant_vote(node.term, node.voted_for, req.term, req.candidate_id, self._up_to_date(req))
        if granted:
            node.record_vote(req.candidate_id)
        logger.info("raft %s: vote for %s in term %d: %s", node.self_id, req.candidate_id, req.term,
                    "granted" if granted else "refused")
        return wire.vote_response(cmd, wire.VoteResponse(term=node.term, granted=granted))

    def on_pre_vote(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        node = self.node
        try:
            req = self._parse_vote(cmd)
        except wire.WireError as exc:
            return self._reject_frame(cmd, conn, exc)
        granted = rules.grant_pre_vote(node.term, req.term, self._up_to_date(req), node.leader_fresh())
        logger.debug("raft %s: pre-vote for %s in term %d: %s", node.self_id, req.candidate_id, req.term, granted)
        return wire.vote_response(cmd, wire.VoteResponse(term=node.term, granted=granted))

    def _parse_vote(self, cmd: RemotingCommand) -> wire.VoteRequest:
        req = wire.parse_vote_request(cmd)
        if req.candidate_id not in self.node.peers or req.candidate_id == self.node.self_id:
            raise wire.WireError(f"unknown candidate {req.candidate_id!r}")
        return req

    def _up_to_date(self, req: wire.VoteRequest) -> bool:
        log = self.node.log
        return rules.log_up_to_date(req.last_term, req.last_index, log.last_term, log.last_index)
