"""A leader sends one append per follower per Ready (``Raft.flush_appends``): proposals
and commit advances stepped between two Readies make the appends due, and the flush at
the Ready sends each follower its new entries and the newest commit index in one MsgApp.
Before, each proposal and each commit advance broadcast on its own (etcd-io/raft does the
same), so under load a follower got, and answered, several appends per Ready."""

from __future__ import annotations

import random

from raftkv.raft import (
    Config,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    Snapshot,
    SnapshotMetadata,
    StateType,
)
from raftkv.raft.types import ConfState


def _drain(n: RawNode, s: MemoryStorage) -> list[Message]:
    out: list[Message] = []
    while n.has_ready():
        rd = n.ready()
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        out += rd.messages
        n.advance(rd)
    return out


def _leader_of_three() -> tuple[RawNode, MemoryStorage]:
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(SnapshotMetadata(
        index=1, term=1, conf_state=ConfState(voters=[1, 2, 3], learners=[]))))
    n = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1, applied=1, pre_vote=False),
                s, random.Random(1))
    n.campaign()
    _drain(n, s)
    n.step(Message(MessageType.VOTE_RESP, to=1, sender=2, term=n.raft.term))
    assert n.raft.state is StateType.LEADER
    _drain(n, s)
    last = n.raft.raft_log.last_index()
    for peer in (2, 3):  # both have the leader's empty entry
        n.step(Message(MessageType.APP_RESP, to=1, sender=peer, term=n.raft.term, index=last))
    _drain(n, s)
    assert n.raft.raft_log.committed == last
    return n, s


def _apps(msgs: list[Message]) -> dict[int, list[Message]]:
    by: dict[int, list[Message]] = {2: [], 3: []}
    for m in msgs:
        if m.type is MessageType.APP:
            by[m.to].append(m)
    return by


def test_proposals_between_readies_go_out_in_one_append_per_follower() -> None:
    n, s = _leader_of_three()
    for data in (b"a", b"b", b"c"):
        n.propose(data)
    apps = _apps(_drain(n, s))
    for peer in (2, 3):
        assert len(apps[peer]) == 1, apps[peer]
        assert [e.data for e in apps[peer][0].entries] == [b"a", b"b", b"c"]


def test_commit_advances_between_readies_go_out_once_per_follower() -> None:
    n, s = _leader_of_three()
    n.propose(b"a")
    _drain(n, s)
    n.propose(b"b")
    _drain(n, s)
    last = n.raft.raft_log.last_index()
    term = n.raft.term
    # follower 2 acknowledges "a" and then "b": two commit advances before one Ready
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=term, index=last - 1))
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=term, index=last))
    apps = _apps(_drain(n, s))
    assert n.raft.raft_log.committed == last
    for peer in (2, 3):
        assert [(m.commit, len(m.entries)) for m in apps[peer]] == [(last, 0)]


def test_a_leader_that_stepped_down_sends_no_due_append() -> None:
    n, s = _leader_of_three()
    n.propose(b"a")
    # before the Ready, a newer leader's append arrives: this node is a follower now
    n.step(Message(MessageType.APP, to=1, sender=2, term=n.raft.term + 1,
                   index=0, log_term=0, commit=0))
    assert n.raft.state is StateType.FOLLOWER
    assert not any(m.type is MessageType.APP for m in _drain(n, s))
