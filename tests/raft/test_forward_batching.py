"""A follower forwards the proposals stepped between two Readies to the leader in one
MsgProp (``Raft._forward_proposal``), so under load the leader steps one message per
follower Ready, not one per proposal. Only normal entries are joined, only into a
proposal not yet handed out in a Ready, in their order, and up to ``max_size_per_msg``."""

from __future__ import annotations

import random

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryType,
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


def _follower(max_size: int = 1 << 20) -> tuple[RawNode, MemoryStorage]:
    """Member 2 of three, following leader 1."""
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(SnapshotMetadata(
        index=1, term=1, conf_state=ConfState(voters=[1, 2, 3], learners=[]))))
    n = RawNode(Config(id=2, election_tick=10, heartbeat_tick=1, applied=1, pre_vote=False,
                       max_size_per_msg=max_size), s, random.Random(1))
    n.step(Message(MessageType.HEARTBEAT, to=2, sender=1, term=2, commit=1))
    assert n.raft.state is StateType.FOLLOWER and n.raft.lead == 1
    _drain(n, s)
    return n, s


def _props(msgs: list[Message]) -> list[list[bytes]]:
    out = []
    for m in msgs:
        if m.type is MessageType.PROP:
            assert m.to == 1
            out.append([e.data for e in m.entries])
    return out


def test_proposals_between_readies_reach_the_leader_in_one_message() -> None:
    n, s = _follower()
    n.propose(b"a")
    n.step(Message(MessageType.HEARTBEAT, to=2, sender=1, term=2, commit=1))  # a reply between
    n.propose(b"b")
    n.propose(b"c")
    msgs = _drain(n, s)
    assert _props(msgs) == [[b"a", b"b", b"c"]]
    assert any(m.type is MessageType.HEARTBEAT_RESP for m in msgs)


def test_a_proposal_handed_out_in_a_ready_is_never_changed() -> None:
    n, s = _follower()
    n.propose(b"a")
    first = _drain(n, s)
    n.propose(b"b")
    second = _drain(n, s)
    assert _props(first) == [[b"a"]] and _props(second) == [[b"b"]]


def test_configuration_changes_travel_alone() -> None:
    n, s = _follower()
    n.propose(b"a")
    n.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    n.propose(b"b")
    n.propose(b"c")
    msgs = [m for m in _drain(n, s) if m.type is MessageType.PROP]
    assert [[e.type for e in m.entries] for m in msgs] == [
        [EntryType.NORMAL], [EntryType.CONF_CHANGE], [EntryType.NORMAL, EntryType.NORMAL]]


def test_joined_proposals_stay_within_the_message_size() -> None:
    n, s = _follower(max_size=5)
    for data in (b"aa", b"bb", b"cc", b"dddddd", b"e"):
        n.propose(data)
    assert _props(_drain(n, s)) == [[b"aa", b"bb"], [b"cc"], [b"dddddd"], [b"e"]]
