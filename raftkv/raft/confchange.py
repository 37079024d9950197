"""Single-member configuration changes as pure functions over (voters, learners).

Invariants: voters and learners are disjoint; a change never leaves zero voters; at most
one member changes per entry; an update (``UPDATE_NODE``, etcd's ConfChangeUpdateNode)
leaves the configuration as it is (its peer URLs are the server's business). ``apply``
is total and deterministic: an invalid change committed to the log (which the leader's
``validate`` should have refused) is a no-op on every node, so all replicas compute the
same configuration from the same log.
"""

from __future__ import annotations

from raftkv.raft.types import ConfChange, ConfChangeType, ConfState


def problem(cs: ConfState, cc: ConfChange) -> str | None:
    """Why ``cc`` cannot be applied to ``cs``, or None if it is valid."""
    voters, learners = set(cs.voters), set(cs.learners)
    node = cc.node_id
    if node <= 0:
        return f"invalid node id {node}"
    if cc.type is ConfChangeType.ADD_NODE:
        if node in voters:
            return f"{node:x} is already a voter"
        return None
    if cc.type is ConfChangeType.ADD_LEARNER_NODE:
        if node in voters:
            return f"{node:x} is a voter; demoting a voter is not supported"
        if node in learners:
            return f"{node:x} is already a learner"
        return None
    if cc.type is ConfChangeType.UPDATE_NODE:
        if node not in voters and node not in learners:
            return f"{node:x} is not a member"
        return None
    if cc.type is ConfChangeType.REMOVE_NODE:
        if node not in voters and node not in learners:
            return f"{node:x} is not a member"
        if voters == {node}:
            return "removing the last voter would leave no quorum"
        return None
    return f"unknown conf change type {cc.type!r}"


def apply(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``; unchanged if ``cc`` is invalid for ``cs``."""
    if problem(cs, cc) is not None or cc.type is ConfChangeType.UPDATE_NODE:
        return cs
    voters, learners = set(cs.voters), set(cs.learners)
    node = cc.node_id
    if cc.type is ConfChangeType.ADD_NODE:
        learners.discard(node)
        voters.add(node)
    elif cc.type is ConfChangeType.ADD_LEARNER_NODE:
        learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
