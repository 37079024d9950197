"""Which wait messages are news: a learner's progress is not, another member or another
cause is (the key decides whether a wait gets a new Event)."""

from __future__ import annotations

from raftkv.operator.reconcile import _event_key


def test_progress_numbers_are_not_news() -> None:
    a = "Learner demo-3 is catching up: raft index 120 of the leader's 400 (30%)."
    b = "Learner demo-3 is catching up: raft index 390 of the leader's 412 (94.7%)."
    assert _event_key(a) == _event_key(b)


def test_another_member_or_cause_is_news() -> None:
    a = "Learner demo-3 is catching up: raft index 120 of the leader's 400."
    assert _event_key(a) != _event_key(a.replace("demo-3", "demo-4"))
    assert _event_key(a) != _event_key("Learner demo-3 is not healthy, so it cannot catch up.")
    assert _event_key(None) is None
