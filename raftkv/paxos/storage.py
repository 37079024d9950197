"""A node's durable Paxos state, in memory: what survives a crash.

``apply(rd)`` is the "fsync" of one Ready: the acceptor's promise and accepted values, the
proposer's highest round, and the learner's chosen values. A restarted node is rebuilt from
this and nothing else, so anything a node did not hand to storage is lost by a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkv.paxos.types import ZERO, Accepted, Ballot, Ready


@dataclass
class PaxosStorage:
    promised: Ballot = ZERO
    accepted: dict[int, Accepted] = field(default_factory=dict)
    max_round: int = 0
    chosen: dict[int, bytes] = field(default_factory=dict)
    writes: int = 0  # Readies that changed something (fsyncs), for measurements

    def apply(self, rd: Ready) -> None:
        p = rd.persist
        if p.is_empty() and not rd.chosen:
            return
        self.writes += 1
        if p.promised is not None:
            self.promised = max(self.promised, p.promised)
        for a in p.accepted:
            self.accepted[a.instance] = a
        if p.max_round is not None:
            self.max_round = max(self.max_round, p.max_round)
        for i, v in rd.chosen:
            self.chosen.setdefault(i, v)
