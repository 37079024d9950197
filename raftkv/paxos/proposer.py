"""What Basic and Multi-Paxos proposers share: round numbers, the promise quorum, and the
value a quorum of promises forces.

Invariants: a proposer never uses a round twice, across crashes too: its counter is restored
from storage (``max_round``, and its own acceptor's promise) and every new round is handed
to ``persist`` with the PREPARE that uses it; phase 2 starts only with promises from a
majority; the value proposed in phase 2 is the one accepted at the highest ballot among
those promises, the proposer's own value only when none of them accepted anything.
"""

from __future__ import annotations

from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import Accepted, Ballot, Persist, quorum


class Rounds:
    """A proposer's round counter, raised past every round it has seen."""

    def __init__(self, st: PaxosStorage) -> None:
        self.used = st.max_round
        self.seen = st.promised.round

    def see(self, b: Ballot) -> None:
        self.seen = max(self.seen, b.round)

    def next(self, node: int, persist: Persist) -> Ballot:
        r = max(self.used, self.seen) + 1
        self.used = r
        persist.max_round = r
        return Ballot(r, node)


def promise_quorum(promises: int, cluster: int) -> bool:
    return promises >= quorum(cluster)


def pick_value(promises: list[tuple[Accepted, ...]], instance: int) -> Accepted | None:
    """The value a quorum of promises forces on ``instance``: the one accepted at the highest
    ballot, or None when no promiser accepted anything there (the proposer is free)."""
    best: Accepted | None = None
    for held in promises:
        for a in held:
            if a.instance == instance and (best is None or a.ballot > best.ballot):
                best = a
    return best
