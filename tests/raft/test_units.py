"""Unit tests of the core's pure pieces: quorum arithmetic, conf changes, storage, flow control."""

from __future__ import annotations

import pytest

from raftkv.raft import confchange, quorum
from raftkv.raft.errors import Compacted, Unavailable
from raftkv.raft.progress import Inflights, Progress, ProgressState
from raftkv.raft.storage import MemoryStorage
from raftkv.raft.types import ConfChange, ConfChangeType, ConfState, Entry


@pytest.mark.parametrize(
    ("acked", "want"),
    [([5], 5), ([5, 3], 3), ([5, 3, 1], 3), ([9, 1, 2, 8], 2), ([7, 7, 7, 1, 1], 7),
     ([5, 4, 3, 2, 1], 3)],
)
def test_committed_index_is_the_majority_median(acked: list[int], want: int) -> None:
    voters = list(range(len(acked)))
    assert quorum.committed_index(voters, lambda v: acked[v]) == want


def test_vote_result() -> None:
    v = [1, 2, 3, 4, 5]
    assert quorum.vote_result(v, {1: True, 2: True}) is quorum.VoteResult.PENDING
    assert quorum.vote_result(v, {1: True, 2: True, 3: True}) is quorum.VoteResult.WON
    assert quorum.vote_result(v, {1: False, 2: False, 3: False}) is quorum.VoteResult.LOST
    assert quorum.vote_result(v, {1: True, 2: False, 3: False, 4: False}) is (
        quorum.VoteResult.LOST)


def test_conf_change_rules() -> None:
    cs = ConfState((1, 2, 3), ())
    add4 = ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4)
    assert confchange.apply(cs, add4) == ConfState((1, 2, 3), (4,))
    promoted = confchange.apply(confchange.apply(cs, add4), ConfChange(ConfChangeType.ADD_NODE, 4))
    assert promoted == ConfState((1, 2, 3, 4), ())
    assert confchange.problem(cs, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2)) is not None
    last = ConfState((1,), ())
    rm = ConfChange(ConfChangeType.REMOVE_NODE, 1)
    assert confchange.problem(last, rm) is not None
    assert confchange.apply(last, rm) == last  # refused changes are no-ops everywhere


def test_memory_storage_compaction_and_conflicts() -> None:
    s = MemoryStorage()
    s.append([Entry(1, i) for i in range(1, 6)])
    s.append([Entry(2, 4), Entry(2, 5), Entry(2, 6)])  # conflicting suffix replaced
    assert [e.term for e in s.entries(1, 7, 1 << 30)] == [1, 1, 1, 2, 2, 2]
    s.compact(3)
    assert s.first_index() == 4
    with pytest.raises(Compacted):
        s.entries(2, 5, 1 << 30)
    with pytest.raises(Unavailable):
        s.term(9)
    assert s.term(3) == 1  # the compaction point keeps its term


def test_inflights_and_flow_control() -> None:
    inf = Inflights(3, 0)
    for i in (1, 2, 3):
        inf.add(i, 10)
    assert inf.full()
    inf.free_le(2)
    assert len(inf) == 1 and not inf.full()
    pr = Progress(5, 2, 0)
    pr.match = 4
    pr.become_replicate()
    pr.sent_entries(6, 2, 10)
    pr.sent_entries(8, 2, 10)
    assert pr.is_paused()
    assert pr.maybe_update(8) and pr.next == 9


def test_probe_backtracking_uses_the_hint() -> None:
    pr = Progress(11, 4, 0)
    assert pr.state is ProgressState.PROBE
    # a rejection of the append at 10 hinting the follower's log matches up to 4
    assert pr.maybe_decr_to(10, 4)
    assert pr.next == 5
    assert not pr.maybe_decr_to(10, 4)  # stale rejection: already acted on
