"""Issue 11 defect 8, in the Raft core: a leader refuses proposals once its uncommitted
entries hold max_uncommitted_entries_size payload bytes (etcd's MaxUncommittedEntriesSize),
and a Ready carries at most max_committed_size_per_ready bytes of committed entries."""

from __future__ import annotations

import random

import pytest

from raftkv.raft import (
    Config,
    ConfState,
    MemoryStorage,
    RawNode,
    Snapshot,
    SnapshotMetadata,
    UncommittedSizeExceeded,
)


def _leader(voters: list[int], **cfg: int) -> tuple[RawNode, MemoryStorage]:
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(SnapshotMetadata(index=1, term=1,
                                               conf_state=ConfState(voters=voters))))
    n = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1, applied=1, **cfg), s,
                random.Random(1))
    n.raft.become_candidate()
    n.raft.become_leader()
    return n, s


def test_uncommitted_entries_are_bounded_on_a_leader_without_quorum() -> None:
    n, _ = _leader([1, 2, 3], max_uncommitted_entries_size=1000)  # 2 and 3 never answer
    accepted = 0
    with pytest.raises(UncommittedSizeExceeded):
        for _ in range(100):
            n.propose(b"x" * 100)
            accepted += 1
    assert accepted == 10
    assert n.raft.uncommitted_size <= 1000


def test_a_ready_carries_a_bounded_size_of_committed_entries() -> None:
    n, s = _leader([1], max_committed_size_per_ready=1000)
    for _ in range(50):
        n.propose(b"y" * 100)
    sizes = []
    while n.has_ready():
        rd = n.ready()
        s.append(rd.entries)
        if rd.committed_entries:
            sizes.append(sum(len(e.data) for e in rd.committed_entries))
        n.advance(rd)
    assert sum(sizes) == 5000
    assert max(sizes) <= 1000 and len(sizes) >= 5
    assert n.raft.uncommitted_size == 0
