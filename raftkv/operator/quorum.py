"""Quorum arithmetic over voters, and the membership a step leaves behind.

Pure functions, no I/O. Only voters count: learners replicate the log but neither vote
nor hold quorum, so they appear in no formula here.

Invariants:
- ``quorum(v) = v // 2 + 1`` for v >= 1: any two quorums of the same voter set overlap;
- ``pdb_max_unavailable(v) = (v - 1) // 2``: the PodDisruptionBudget never lets an
  eviction take a healthy cluster below quorum;
- :func:`after` applies only the immediate effect of a step (the voter set and who is
  down right after it), which is what the planner re-checks quorum against; creating a
  pod changes nothing at once and a pod is deleted only once no member uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from raftkv.operator.types import (
    Member,
    PromoteLearner,
    RemoveMember,
    RenewCertificates,
    RollMember,
    Step,
)


def quorum(voters: int) -> int:
    """Votes needed to elect a leader or commit an entry among ``voters`` voters."""
    if voters < 1:
        raise ValueError(f"a Raft configuration needs at least one voter, not {voters}")
    return voters // 2 + 1


def pdb_max_unavailable(voters: int) -> int:
    """maxUnavailable of the PodDisruptionBudget implied by ``voters`` voters (>= 0)."""
    return max(0, (voters - 1) // 2)


def disruption_budget(members: Iterable[Member]) -> int:
    """maxUnavailable for the member pods, from the voters among ``members`` only."""
    return pdb_max_unavailable(len(voters(members)))


def voters(members: Iterable[Member]) -> list[Member]:
    return [m for m in members if m.voter]


def healthy_voters(members: Iterable[Member]) -> list[Member]:
    return [m for m in members if m.voter and m.healthy]


def quorate(members: Iterable[Member]) -> bool:
    """There are voters and enough of them are healthy to elect a leader and commit."""
    ms = list(members)
    v = len(voters(ms))
    return v >= 1 and len(healthy_voters(ms)) >= quorum(v)


def after(members: tuple[Member, ...], step: Step) -> tuple[Member, ...]:
    """The members right after ``step`` takes effect, before anything recovers."""
    if isinstance(step, PromoteLearner):
        return tuple(replace(m, learner=False) if m.ordinal == step.ordinal else m
                     for m in members)
    if isinstance(step, RemoveMember):
        return tuple(m for m in members if m.ordinal != step.ordinal)
    if isinstance(step, (RollMember, RenewCertificates)):
        return tuple(replace(m, healthy=False) if m.ordinal == step.ordinal else m
                     for m in members)
    return members

