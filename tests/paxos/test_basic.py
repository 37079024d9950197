"""Basic (single-decree) Paxos scenarios and the proposer's value rule."""

from __future__ import annotations

from raftkv.paxos import Accepted, Ballot, MsgType
from raftkv.paxos.proposer import pick_value
from tests.paxos.pump import Pump


def test_one_proposer_decides_and_every_learner_learns() -> None:
    p = Pump("basic")
    p.basic(1).propose(b"v")
    p.flush()
    assert all(p.basic(i).chosen == b"v" for i in p.ids)
    kinds = [m.type for m in p.sent]
    assert kinds.count(MsgType.PREPARE) == 2 and kinds.count(MsgType.ACCEPT) == 2


def test_a_later_proposer_is_forced_to_the_accepted_value() -> None:
    p = Pump("basic")
    p.basic(1).propose(b"first")
    # a majority (1, 2) accepts, but no one learns it was chosen
    p.flush(drop=lambda m: m.type in (MsgType.ACCEPTED, MsgType.CHOSEN)
            or (m.type is MsgType.ACCEPT and m.to == 3))
    assert p.basic(3).chosen is None
    p.crash(1)
    p.basic(3).propose(b"second")
    p.flush()
    assert p.basic(3).chosen == b"first" and p.basic(2).chosen == b"first"


def test_pick_value_takes_the_highest_ballot() -> None:
    promises = [
        (Accepted(0, Ballot(2, 1), b"old"),),
        (),
        (Accepted(0, Ballot(3, 2), b"new"), Accepted(1, Ballot(9, 9), b"other")),
    ]
    got = pick_value(promises, 0)
    assert got is not None and got.value == b"new"
    assert pick_value([(), ()], 0) is None


def test_without_backoff_a_preempted_proposer_retries_at_once() -> None:
    p = Pump("basic", backoff=False)
    p.basic(1).propose(b"a")
    first = p.basic(1).ballot
    p.basic(2).propose(b"b")  # a higher ballot reaches node 1's acceptor
    prep = next(m for m in p.basic(2).ready().messages if m.to == 1)
    p.basic(1).step(prep)
    assert p.basic(1).ballot > prep.ballot > first  # it jumped over at once


def test_with_backoff_a_preempted_proposer_waits() -> None:
    p = Pump("basic", backoff=True)
    p.basic(1).propose(b"a")
    p.basic(2).propose(b"b")
    prep = next(m for m in p.basic(2).ready().messages if m.to == 1)
    before = p.basic(1).ballot
    p.basic(1).step(prep)
    assert p.basic(1).ballot == before and p.basic(1).wait >= 1
