"""Issue 11 defect 10: in a proposal batch each conf change's pending index is its own
entry's index (last_index()+i+1), and a batch refused because of one entry leaves
pending_conf_index where it was. Also: a promotion refused because the learner lags
raises a typed error the server maps to etcd's LearnerNotReady."""

from __future__ import annotations

import random

import pytest

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Snapshot,
    SnapshotMetadata,
)
from raftkv.raft.codec import encode_conf_change
from raftkv.raft.types import ConfState


def _leader(learners: list[int] | None = None) -> RawNode:
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(SnapshotMetadata(
        index=1, term=1, conf_state=ConfState(voters=[1], learners=learners or []))))
    n = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1, applied=1), s,
                random.Random(1))
    n.campaign()
    while n.has_ready():
        rd = n.ready()
        s.append(rd.entries)
        n.advance(rd)
    assert n.raft.lead == 1
    return n


def _cc(t: ConfChangeType, node: int) -> Entry:
    return Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(ConfChange(t, node)))


def _propose(n: RawNode, ents: list[Entry]) -> None:
    n.raft.step(Message(MessageType.PROP, sender=1, entries=ents))


def test_pending_index_is_the_conf_change_entrys_own() -> None:
    n = _leader()
    last = n.raft.raft_log.last_index()
    _propose(n, [Entry(0, 0, data=b"x"), Entry(0, 0, data=b"y"),
                 _cc(ConfChangeType.ADD_LEARNER_NODE, 2)])
    assert n.raft.pending_conf_index == last + 3
    assert n.raft.raft_log.last_index() == last + 3


def test_a_refused_batch_leaves_pending_where_it_was() -> None:
    n = _leader()
    before = n.raft.pending_conf_index
    with pytest.raises(ProposalDropped):
        _propose(n, [_cc(ConfChangeType.ADD_LEARNER_NODE, 2),
                     _cc(ConfChangeType.ADD_LEARNER_NODE, 3)])  # two at once: refused
    assert n.raft.pending_conf_index == before
    # and a single change goes through afterwards
    _propose(n, [_cc(ConfChangeType.ADD_LEARNER_NODE, 2)])


def test_promoting_a_lagging_learner_is_a_typed_refusal() -> None:
    n = _leader(learners=[2])
    _propose(n, [Entry(0, 0, data=b"x")])
    n.advance(n.ready())
    from raftkv.raft import LearnerNotCaughtUp

    with pytest.raises(LearnerNotCaughtUp):
        _propose(n, [_cc(ConfChangeType.ADD_NODE, 2)])
