"""Quorum arithmetic as pure functions over one majority configuration.

Invariants: a majority of n voters is n // 2 + 1; an empty voter set commits everything
(``committed_index`` returns a huge number, as etcd-io/raft does, so joint checks compose)
and wins every vote.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import IntEnum

INFINITE = 1 << 62


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    return n // 2 + 1


def committed_index(voters: Collection[int], acked: Callable[[int], int]) -> int:
    """The largest index acknowledged by a majority of ``voters``."""
    n = len(voters)
    if n == 0:
        return INFINITE
    idx = sorted((acked(v) for v in voters), reverse=True)
    return idx[majority(n) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is None:
            continue
        if got:
            granted += 1
        else:
            rejected += 1
    q = majority(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST
