"""Raft group end to end: three RaftNodes in this process over real loopback sockets, real CommitLogs in
tmp dirs, the fast timing profile (heartbeat 200 ms, leader lost after 600 ms)."""
from __future__ import annotations

import asyncio
import os
import random
import struct
from pathlib import Path

import pytest

from cluster.local import dledger_wire as wire
from cluster.local.dledger import LeadershipLostError, NotLeaderError, QuorumTimeoutError, RaftNode
from harness.remoting.frame import RemotingCommand, encode_command

from dledger_group import FAST, RaftGroup, log_contents, wait_until  # type: ignore[import-not-found]

pytestmark = pytest.mark.integration
#: Election timeout + the longest random vote wait + round trips and a loaded-machine margin.
FAILOVER_BOUND = FAST.raft_heartbeat_interval * FAST.raft_max_heartbeat_leak + FAST.raft_vote_max + 2.0


def run(coro_fn, tmp: Path, **group_kw) -> None:  # type: ignore[no-untyped-def]
    """Run ``coro_fn(group)`` on a fresh loop; the group is stopped whatever happens."""
    async def main() -> None:
        group = RaftGroup(tmp, **group_kw)
        await group.start()
        try:
            await asyncio.wait_for(coro_fn(group), 45)
        finally:
            await group.stop()
    asyncio.run(main())


async def append_many(leader: RaftNode, count: int, tag: str) -> None:
    await asyncio.gather(*(leader.append([f"{tag}-{i}".encode()]) for i in range(count)))


async def wait_converged(group: RaftGroup, nodes: list[RaftNode], timeout: float = 10.0) -> None:
    def same() -> bool:
        last = {n.log.last_index for n in nodes}
        commit = {n.commit_index for n in nodes}
        return len(last) == 1 and commit == last
    await wait_until(same, timeout, "logs and commit indexes to converge")
    contents = [log_contents(n) for n in nodes]
    assert all(c == contents[0] for c in contents), "logs differ"


def test_elects_one_leader_and_replicates(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        leader = await group.wait_leader()
        assert sum(n.role == "leader" for n in group.running()) == 1
        await append_many(leader, 300, "a")
        await wait_converged(group, group.running())
        payloads = [p for _, _, p in log_contents(leader) if p]
        assert sorted(payloads) == sorted(f"a-{i}".encode() for i in range(300))
        follower = next(n for n in group.running() if n is not leader)
        with pytest.raises(NotLeaderError) as info:
            follower.append_nowait([b"x"])
        assert info.value.leader_id == leader.self_id
        for member in group.members.values():
            assert member.commits == sorted(member.commits), "on_commit went backwards"
            assert member.commits[-1] == leader.commit_index
    run(body, tmp_path)


def test_leader_stop_elects_new_leader(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        old = await group.wait_leader()
        await append_many(old, 50, "before")
        old_term = old.term
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await group.members[old.self_id].stop()
        new = await group.wait_leader(timeout=FAILOVER_BOUND)
        assert loop.time() - stopped_at < FAILOVER_BOUND
        assert new.self_id != old.self_id and new.term > old_term
        await append_many(new, 50, "after")
        await wait_converged(group, group.running())
    run(body, tmp_path)


def test_restarted_node_rejoins_and_catches_up(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        leader = await group.wait_leader()
        victim = next(m for m in group.members.values() if m.node is not leader)
        term_before = victim.node.term if victim.node else 0
        await victim.stop()
        await append_many(leader, 500, "missed")
        node = await victim.start()
        assert node.term >= term_before, "term not restored from the state dir"
        await wait_converged(group, group.running(), timeout=15)
        assert group.leader() is leader, "a rejoining follower must not depose the leader"
    run(body, tmp_path)


def test_isolated_leader_steps_down_and_its_tail_is_truncated(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        old = await group.wait_leader()
        await append_many(old, 20, "ok")
        await wait_converged(group, group.running())
        old_term = old.term
        group.isolate(old.self_id)
        stray = [old.append_nowait([f"stray-{i}".encode()])[1] for i in range(5)]
        stray_first = old.log.last_index - 4
        for future in stray:
            with pytest.raises(QuorumTimeoutError):
                await future
        assert any(isinstance(f.exception(), LeadershipLostError) for f in stray), "no step-down seen"
        assert old.role != "leader"
        majority = [m for m in group.members if m != old.self_id]
        new = await group.wait_leader(timeout=FAILOVER_BOUND, among=majority)
        await append_many(new, 30, "majority")
        assert old.commit_index < stray_first, "an isolated leader committed"
        assert old.term == old_term, "pre-vote should keep a cut-off node from raising its term"
        group.heal()
        await wait_converged(group, group.running(), timeout=15)
        assert group.leader() is new and new.term > old_term
        member = group.members[old.self_id]
        assert member.truncations and min(member.truncations) <= stray_first
        assert not any(p.startswith(b"stray") for _, _, p in log_contents(new))
    run(body, tmp_path, proxied=True)


def test_partitioned_follower_neither_inflates_its_term_nor_deposes_the_leader(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        leader = await group.wait_leader()
        loner = next(n for n in group.running() if n is not leader)
        term = leader.term
        group.isolate(loner.self_id)
        timeout = FAST.raft_heartbeat_interval * FAST.raft_max_heartbeat_leak
        # Let the loner time out several times over, asking for (pre-)votes nobody hears.
        await wait_until(lambda: loner.now() - loner.last_contact > 4 * timeout, 10, "the loner to time out")
        assert loner.term == term and loner.role != "leader"
        await append_many(leader, 10, "without-loner")
        group.heal()
        await wait_converged(group, group.running(), timeout=15)
        assert group.leader() is leader and leader.term == term and loner.leader_id == leader.self_id
    run(body, tmp_path, proxied=True)


def test_single_replica_group_commits_alone(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        node = await group.wait_leader(timeout=2)
        entries = await node.append([b"solo-1", b"solo-2"])
        assert [e.index for e in entries] == [2, 3]  # index 1 is the leader's no-op
        assert node.commit_index == 3 and group.members["n0"].commits[-1] == 3
    run(body, tmp_path, size=1)


def _fuzz_frames(rng: random.Random, peer_ids: list[str]) -> list[bytes]:
    frames = [rng.randbytes(rng.randint(1, 200)) for _ in range(20)]
    frames.append(struct.pack(">i", 2**30))  # an impossible frame length
    for _ in range(60):
        code = rng.choice([wire.VOTE, wire.APPEND, wire.PRE_VOTE, 51999])
        ext = {k: rng.choice(["-1", "x", "99999999999999999999999", "1", rng.choice(peer_ids), ""])
               for k in rng.sample(["term", "leaderId", "candidateId", "prevIndex", "prevTerm", "commit",
                                    "lastIndex", "lastTerm"], rng.randint(0, 8))}
        body = rng.choice([b"", rng.randbytes(30), struct.pack(">I", 5) + rng.randbytes(20),
                           struct.pack(">I", 1_000_000_000)])
        frames.append(encode_command(RemotingCommand(code=code, opaque=rng.randint(0, 99), ext_fields=ext,
                                                     body=body)))
    return frames


def test_fuzzed_peer_frames_do_not_crash_the_node(tmp_path: Path) -> None:
    async def body(group: RaftGroup) -> None:
        await group.wait_leader()
        rng = random.Random(42)
        for member in group.members.values():
            for frame in _fuzz_frames(rng, list(group.members)):
                _, writer = await asyncio.open_connection("127.0.0.1", member.port)
                writer.write(frame + os.urandom(rng.randint(0, 8)))
                await writer.drain()
                writer.close()
        leader = await group.wait_leader(timeout=FAILOVER_BOUND)
        await append_many(leader, 20, "after-fuzz")
        await wait_converged(group, group.running())
    run(body, tmp_path)
