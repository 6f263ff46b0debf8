"""AllocateMessageQueueAveragely, checked against the formula of the protocol reference (F.3)."""
from __future__ import annotations

import pytest

from harness.remoting.consumer import allocate_averagely

QUEUES = [f"q{i}" for i in range(8)]


@pytest.mark.parametrize(("queues", "consumers", "expected"), [
    (8, 3, [[0, 1, 2], [3, 4, 5], [6, 7]]),
    (8, 4, [[0, 1], [2, 3], [4, 5], [6, 7]]),
    (8, 5, [[0, 1], [2, 3], [4, 5], [6], [7]]),
    (3, 5, [[0], [1], [2], [], []]),
    (4, 4, [[0], [1], [2], [3]]),
    (8, 1, [[0, 1, 2, 3, 4, 5, 6, 7]]),
    (7, 2, [[0, 1, 2, 3], [4, 5, 6]]),
    (0, 2, [[], []]),
])
def test_table(queues: int, consumers: int, expected: list[list[int]]) -> None:
    qs = QUEUES[:queues] if queues <= 8 else [f"q{i}" for i in range(queues)]
    ids = [f"c{i}" for i in range(consumers)]
    got = [allocate_averagely(qs, ids, me) for me in ids]
    assert got == [[qs[i] for i in block] for block in expected]


@pytest.mark.parametrize("queues", range(1, 20))
@pytest.mark.parametrize("consumers", range(1, 9))
def test_every_queue_has_exactly_one_owner(queues: int, consumers: int) -> None:
    qs = [f"q{i:02d}" for i in range(queues)]
    ids = [f"c{i}" for i in range(consumers)]
    owned = [q for me in ids for q in allocate_averagely(qs, ids, me)]
    assert sorted(owned) == qs
    sizes = [len(allocate_averagely(qs, ids, me)) for me in ids]
    assert max(sizes) - min(sizes) <= 1


def test_a_consumer_not_in_the_list_gets_nothing() -> None:
    assert allocate_averagely(QUEUES, ["a", "b"], "c") == []
