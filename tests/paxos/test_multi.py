"""Multi-Paxos scenarios: one phase 1 for many instances, no-op gaps, out-of-order choice,
values a new leader must keep, and the persist-then-send rule."""

from __future__ import annotations

from raftkv.paxos import NOOP, Message, MsgType, Role
from tests.paxos.pump import Pump


def _lead(p: Pump, i: int) -> None:
    p.multi(i).campaign()
    p.flush()
    assert p.multi(i).role is Role.LEADER


def test_leader_skips_phase_one_for_consecutive_instances() -> None:
    p = Pump("multi")
    _lead(p, 1)
    prepares = sum(m.type is MsgType.PREPARE for m in p.sent)
    assert prepares == 2
    for k in range(10):
        assert p.multi(1).propose(f"v{k}".encode()) == k
    p.flush()
    assert sum(m.type is MsgType.PREPARE for m in p.sent) == prepares  # no new phase 1
    for i in p.ids:
        assert p.multi(i).chosen == {k: f"v{k}".encode() for k in range(10)}


def test_gap_is_filled_with_a_noop_and_instances_are_chosen_out_of_order() -> None:
    p = Pump("multi")
    _lead(p, 1)
    for v in (b"a", b"b", b"c"):
        p.multi(1).propose(v)
    p.flush(drop=lambda m: m.type is MsgType.ACCEPT and m.instance == 1)
    assert p.multi(1).chosen == {0: b"a", 2: b"c"}  # 2 chosen while 1 is not: a gap
    assert p.multi(1).first_unchosen == 1
    p.crash(1)
    _lead(p, 2)
    assert p.multi(2).noops == 1
    for i in (2, 3):
        assert p.multi(i).chosen == {0: b"a", 1: NOOP, 2: b"c"}


def test_new_leader_keeps_a_value_a_promiser_accepted() -> None:
    p = Pump("multi")
    _lead(p, 1)
    p.multi(1).propose(b"a")
    # b reaches node 2's acceptor only, and nobody hears that it was accepted
    p.multi(1).propose(b"b")
    p.flush(drop=lambda m: (m.instance == 0 and m.type is MsgType.CHOSEN)
            or (m.type is MsgType.ACCEPT and m.to == 3)
            or m.type is MsgType.ACCEPTED)
    assert p.storage[2].accepted[1].value == b"b" and 1 not in p.multi(2).chosen
    p.crash(1)
    _lead(p, 3)
    assert p.multi(3).chosen[1] == b"b" and p.multi(3).noops == 0


def test_promise_leaves_only_with_its_persisted_state() -> None:
    p = Pump("multi")
    p.multi(1).campaign()
    rd1 = p.multi(1).ready()
    p.storage[1].apply(rd1)
    prep = next(m for m in rd1.messages if m.to == 2)
    assert rd1.persist.max_round == prep.ballot.round  # the round is durable as it is used
    p.multi(2).step(prep)
    rd = p.multi(2).ready()
    promise = [m for m in rd.messages if m.type is MsgType.PROMISE]
    assert promise and rd.persist.promised == prep.ballot
    # the acceptor that persisted it refuses a lower ballot after a restart
    p.storage[2].apply(rd)
    p.crash(2)
    p.restart(2)
    low = Message(MsgType.PREPARE, 3, 2, prep.ballot._replace(round=0, node=3))
    p.multi(2).step(low)
    assert [m.type for m in p.multi(2).ready().messages] == [MsgType.NACK]


def test_restarted_proposer_never_reuses_a_round() -> None:
    p = Pump("multi")
    p.multi(1).campaign()
    p.flush()
    first = p.multi(1).ballot
    p.crash(1)
    p.restart(1).campaign()  # type: ignore[union-attr]
    assert p.multi(1).ballot.round > first.round


def test_stale_leader_steps_down_on_a_higher_promise() -> None:
    p = Pump("multi")
    _lead(p, 1)
    p.multi(2).campaign()
    p.flush(drop=lambda m: m.to == 1)  # node 1 never hears of the new leader
    assert p.multi(2).role is Role.LEADER
    assert p.multi(1).propose(b"x") is not None  # it still thinks it leads
    p.flush()
    assert p.multi(1).role is Role.FOLLOWER
    assert all(b"x" not in p.multi(i).chosen.values() for i in p.ids)
