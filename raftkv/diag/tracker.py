"""Leader tracking for ``diag watch``: pure state transitions over status polls.

A poll is the set of statuses (or errors) seen at one instant. The *leader* of a poll is
the answering member that reports itself leader with the highest term; a poll without one
is leaderless. The tracker emits an event when the leader or the term changes, and when a
leaderless spell starts and ends, with how long it lasted.

A new leader (or term) is confirmed only when two consecutive polls agree on it: real etcd
can briefly answer Status with the new leader and the old term while it applies its
election, and a watch must not report that as an election of its own.

Invariants: events are emitted in poll order; the leaderless duration is measured between
polls (first leaderless poll -> first poll that saw the leader that was then confirmed), so
its resolution is the poll interval; an elected event always carries the previous leader
and term when known.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.client import EndpointStatus, EtcdError


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # "initial", "leader-lost", "elected", "term", "unreachable", "back"
    leader: int = 0
    term: int = 0
    previous_leader: int = 0
    previous_term: int = 0
    leaderless_for: float | None = None
    endpoint: str = ""
    detail: str = ""


def poll_leader(statuses: dict[str, EndpointStatus | EtcdError]) -> tuple[int, int]:
    best: tuple[int, int] = (0, 0)
    for s in statuses.values():
        if isinstance(s, EndpointStatus) and s.is_leader and s.raft_term >= best[1]:
            best = (s.member_id, s.raft_term)
    return best


def max_term(statuses: dict[str, EndpointStatus | EtcdError]) -> int:
    return max((s.raft_term for s in statuses.values() if isinstance(s, EndpointStatus)),
               default=0)


class LeaderTracker:
    def __init__(self) -> None:
        self.started = False
        self.leader = 0
        self.term = 0
        self.leaderless_since: float | None = None
        self.down: dict[str, str] = {}
        self.elections = 0
        self.pending: tuple[int, int, float] | None = None  # leader, term, first seen

    def observe(self, at: float, statuses: dict[str, EndpointStatus | EtcdError]) -> list[Event]:
        events: list[Event] = []
        for ep, s in statuses.items():
            if isinstance(s, EtcdError):
                if ep not in self.down:
                    self.down[ep] = s.kind.value
                    events.append(Event(at, "unreachable", endpoint=ep, detail=str(s)))
            elif ep in self.down:
                del self.down[ep]
                events.append(Event(at, "back", endpoint=ep))
        leader, term = poll_leader(statuses)
        if not self.started:
            self.started = True
            if leader:
                self.leader, self.term = leader, term
            else:
                self.leaderless_since = at
                self.term = max_term(statuses)
            events.append(Event(at, "initial", leader=leader, term=self.term))
            return events
        if not leader:
            self.pending = None
            if self.leaderless_since is None:
                self.leaderless_since = at
                events.append(Event(at, "leader-lost", previous_leader=self.leader,
                                     previous_term=self.term, term=max_term(statuses)))
            return events
        if leader == self.leader and term == self.term:
            self.pending = None
            self.leaderless_since = None
            return events
        if self.pending is None or self.pending[0] != leader:
            self.pending = (leader, term, at)
            return events
        if self.pending[1] != term:
            self.pending = (leader, term, self.pending[2])  # same leader, term settling
            return events
        seen = self.pending[2]
        lost_for = seen - self.leaderless_since if self.leaderless_since is not None else 0.0
        kind = "elected" if leader != self.leader else "term"
        events.append(Event(at, kind, leader=leader, term=term,
                            previous_leader=self.leader, previous_term=self.term,
                            leaderless_for=lost_for))
        self.elections += 1
        self.leader, self.term = leader, term
        self.leaderless_since = None
        self.pending = None
        return events
