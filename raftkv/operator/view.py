"""The planner's view of an observation: members normalised, the leader resolved, names.

Invariants:
- a member that lost its data is never healthy, whatever its pod reports;
- ``leader`` is a healthy voter whose id the members report as leader, or None;
- members are sorted by ordinal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from raftkv.operator.quorum import voters
from raftkv.operator.types import Member, Observed

# etcd promotes a learner once its log reaches 90% of the leader's (isLearnerReady).
CATCH_UP_NUMERATOR, CATCH_UP_DENOMINATOR = 9, 10


def iso_utc(ts: int) -> str:
    """Unix seconds as ``YYYY-MM-DDThh:mm:ssZ`` (proleptic Gregorian; no clock, no tz data)."""
    days, secs = divmod(ts, 86400)
    z = days + 719468  # days since 0000-03-01 (H. Hinnant's civil_from_days)
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day, month = doy - (153 * mp + 2) // 5 + 1, mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    h, rem = divmod(secs, 3600)
    return f"{year:04d}-{month:02d}-{day:02d}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}Z"


def caught_up(learner: Member, leader: Member) -> bool:
    return learner.raft_index * CATCH_UP_DENOMINATOR >= leader.raft_index * CATCH_UP_NUMERATOR


@dataclass(frozen=True)
class View:
    """The observation with members normalised: a member that lost its data is unhealthy."""

    obs: Observed
    members: tuple[Member, ...]
    leader: Member | None

    @classmethod
    def of(cls, obs: Observed) -> View:
        assert obs.members is not None
        members = tuple(
            sorted((replace(m, healthy=False) if m.data_lost else m for m in obs.members),
                   key=lambda m: m.ordinal)
        )
        leader = next((m for m in members
                       if m.id == obs.leader_id and m.voter and m.healthy), None)
        return cls(obs, members, leader)

    def name(self, ordinal: int) -> str:
        return f"{self.obs.cluster}-{ordinal}"

    def names(self, members: Sequence[Member]) -> str:
        names = [self.name(m.ordinal) for m in members]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def member(self, ordinal: int) -> Member | None:
        return next((m for m in self.members if m.ordinal == ordinal), None)

    @property
    def replicas(self) -> int:
        return self.obs.spec.replicas

    @property
    def learners(self) -> list[Member]:
        return [m for m in self.members if m.learner]

    @property
    def voters(self) -> list[Member]:
        return voters(self.members)
