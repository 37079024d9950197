"""The scaling planner: from what the operator observed to exactly one safe next step.

``plan(observed)`` is pure (no I/O, no clock, no randomness): it returns one
:class:`~raftkv.operator.types.Step` or a :class:`~raftkv.operator.types.Wait` whose
reason is a sentence a person can act on. The operator executes the step (idempotently),
observes again and asks again; it may restart between any two calls, and the only memory
it keeps is the step it recorded in the RaftCluster's status before executing it.

The waits that come before the rules (no member answers, no quorum or leader, the
recorded step still settling) and after them (nothing to do) live in
``raftkv.operator.waits``; the normalised observation in ``raftkv.operator.view``.

Before the quorum check, a member whose pod is gone but whose volume claim remains gets
its pod back (:class:`CreatePod`): it restarts on its data and rejoins as itself, which
changes no membership and so needs no quorum (without it, losing the pods of a majority
would leave nothing able to restore them). Likewise a member that is down with expired
certificates is restarted on renewed ones (:class:`RenewCertificates`), one per call:
it cannot serve anyway, and after an operator outage longer than the certificates'
renewal window this is what brings a cluster back.

Rules, in the order they are tried once a healthy quorum and a leader exist:

1. finish the membership change in flight: a learner beyond the target, lost or one too
   many is removed; a learner without a pod gets one; a pod no member uses is deleted,
   then a claim no pod and no member uses; the learner is promoted once caught up (90%
   of the leader's raft index, as etcd);
2. replace a voter whose data was lost (its claim is gone): remove it (rule 3 then adds
   a fresh learner in the lowest free ordinal);
3. scale up: add a learner in the lowest ordinal with no member, pod or claim (its pod
   follows, rule 1);
4. scale down: remove an unhealthy voter if there is one, else a follower (the highest
   ordinal), moving leadership away first only if the leader is the one left to remove;
   its pod and claim follow (rule 1);
5. renew certificates that expire within ``spec.renew_before`` of ``now``: restart one
   member at a time on renewed certificates; a member that is down first (it costs no
   redundancy, and may be down because its certificates expired), else followers, the
   leader last after a leadership transfer; a healthy member only while every other
   member is healthy, and never the only voter (that would stop the cluster);
6. roll members whose image differs from the spec: followers first, the leader last
   after a leadership transfer.

Invariants:
- never two membership changes in flight: a new one (add, or removal of a voter) starts
  only when no learner, memberless pod or orphan claim is left from the previous one;
- a step other than restoring a member's pod, or restarting a member that is down with
  expired certificates, is issued only with a healthy quorum;
- every step is checked against :func:`raftkv.operator.quorum.after`: it is returned only
  if a healthy quorum of voters remains right after it, and no step at all is returned
  without a healthy quorum and a leader;
- scale-down removes a healthy voter only while every other voter is healthy;
- a member is never removed or restarted while it leads;
- at most one healthy member restarts at a time (renewal or upgrade): a restart of a
  healthy member is issued only while every other member is healthy.
"""

from __future__ import annotations

from collections.abc import Callable

from raftkv.operator.quorum import after, healthy_voters, quorate, quorum, voters
from raftkv.operator.types import (
    AddLearner,
    CreatePod,
    DeletePod,
    DeleteVolumeClaim,
    Member,
    Observed,
    Plan,
    PromoteLearner,
    RemovalCause,
    RemoveMember,
    RenewCertificates,
    RollMember,
    Step,
    TransferLeadership,
    Wait,
    WaitKind,
)
from raftkv.operator.view import View, caught_up, iso_utc
from raftkv.operator.waits import idle, no_quorum_or_leader, settling, without_members


def plan(obs: Observed) -> Plan:
    """The one next step for ``obs``, or a wait with a reason."""
    if not obs.members:
        return without_members(obs)
    view = View.of(obs)
    restore = _restore(view)
    if restore is not None:
        return restore
    blocked = no_quorum_or_leader(view)
    if blocked is not None:
        return blocked
    waiting = settling(view)
    if waiting is not None:
        return waiting
    for rule in _RULES:
        result = rule(view)
        if result is not None:
            return _guarded(view, result)
    return idle(view)


def _restore(view: View) -> Step | None:
    """A member whose pod is gone but whose data (claim) remains: start it again. A member
    that is down with expired certificates: restart it on renewed ones."""
    for m in view.members:
        if m.ordinal not in view.obs.pods and m.ordinal in view.obs.claims and not m.data_lost:
            return CreatePod(m.ordinal)
    if view.obs.spec.renew_before is not None:
        for m in view.members:
            expired = m.cert_not_after is not None and m.cert_not_after <= view.obs.now
            if expired and not m.healthy and not m.data_lost and m.ordinal in view.obs.pods:
                return RenewCertificates(m.ordinal)
    return None


def _surplus_learner(view: View) -> Step | None:
    """Learners that must go: lost, beyond the target, or more than one."""
    learners = view.learners
    for m in reversed(learners):
        if m.data_lost:
            return RemoveMember(m.ordinal, m.id, RemovalCause.DATA_LOST)
        if len(view.voters) >= view.replicas:
            return RemoveMember(m.ordinal, m.id, RemovalCause.SCALE_DOWN)
        if m is not learners[0]:
            return RemoveMember(m.ordinal, m.id, RemovalCause.EXTRA_CHANGE)
    return None


def _unpodded_learner(view: View) -> Step | None:
    """The learner just added has no pod yet: create it (it joins the existing cluster)."""
    for m in view.learners:
        if m.ordinal not in view.obs.pods:
            return CreatePod(m.ordinal)
    return None


def _leftovers(view: View) -> Step | None:
    """What a finished removal leaves: a pod no member uses, then its claim."""
    for o in sorted(view.obs.pods, reverse=True):
        if view.member(o) is None:
            return DeletePod(o)
    for o in sorted(view.obs.claims, reverse=True):
        if o not in view.obs.pods and view.member(o) is None:
            return DeleteVolumeClaim(o)
    return None


def _learner(view: View) -> Plan | None:
    """The one learner left: promote it once caught up."""
    if not view.learners:
        return None
    learner, leader = view.learners[0], view.leader
    assert leader is not None
    n = view.name(learner.ordinal)
    if not learner.healthy:
        return Wait(
            f"Learner {n} is not healthy, so it cannot catch up and be promoted; check "
            f"`kubectl describe pod {n}` and `kubectl logs {n}`.",
            WaitKind.BLOCKED,
        )
    if caught_up(learner, leader):
        return PromoteLearner(learner.ordinal, learner.id)
    return Wait(
        f"Learner {n} is catching up: raft index {learner.raft_index} of the leader's "
        f"{leader.raft_index}; it is promoted at 90%. If it stops moving, check its disk "
        "and its network to the leader.",
        WaitKind.CATCHING_UP,
    )


def _replace_lost(view: View) -> Step | None:
    lost = [m for m in view.voters if m.data_lost]
    if not lost:
        return None
    m = lost[-1]
    return RemoveMember(m.ordinal, m.id, RemovalCause.DATA_LOST)


def free_ordinal(view: View) -> int:
    """The lowest ordinal with no member, pod or claim: the name of the next member."""
    used = {m.ordinal for m in view.members} | view.obs.pods | view.obs.claims
    return next(o for o in range(len(used) + 1) if o not in used)


def _scale_up(view: View) -> Step | None:
    if len(view.voters) >= view.replicas:
        return None
    return AddLearner(free_ordinal(view))


def _scale_down(view: View) -> Plan | None:
    vs = view.voters
    if len(vs) <= view.replicas:
        return None
    down = [m for m in vs if not m.healthy]
    if down:  # removing a member that is down anyway costs no redundancy
        leaving = down[-1]
    else:
        followers = [m for m in vs if m is not view.leader]
        leaving = followers[-1] if followers else vs[-1]
    if leaving is view.leader:
        return _transfer_away(view, leaving, "before it is removed")
    return RemoveMember(leaving.ordinal, leaving.id, RemovalCause.SCALE_DOWN)


def due_for_renewal(view: View) -> list[Member]:
    """Members whose certificates expire within ``spec.renew_before`` of ``now``."""
    before = view.obs.spec.renew_before
    if before is None:
        return []
    return [m for m in view.members
            if m.cert_not_after is not None and m.cert_not_after - view.obs.now <= before]


def _when(m: Member) -> str:
    return iso_utc(m.cert_not_after or 0)


def _renew(view: View) -> Plan | None:
    due = due_for_renewal(view)
    if not due:
        return None
    first = min(due, key=lambda m: m.cert_not_after or 0)
    expires, n = _when(first), view.name(first.ordinal)
    if len(view.voters) == 1 and view.voters[0] in due:
        n = view.name(view.voters[0].ordinal)
        return Wait(
            f"The certificates of {n} expire at {_when(view.voters[0])}, and restarting "
            f"the only voter of {view.obs.cluster} on renewed ones would stop the cluster; "
            f"scale it to 3 replicas, or accept the restart with `kubectl delete pod {n}` "
            "(it comes back on renewed certificates).",
            WaitKind.BLOCKED,
        )
    down = [m for m in view.members if not m.healthy]
    if down:
        down_due = [m for m in down if m in due]
        if down_due:  # down anyway (maybe because its certificates expired): costs nothing
            return RenewCertificates(down_due[-1].ordinal)
        return Wait(
            f"Certificate renewal is paused ({n}'s expire at {expires}): "
            f"{view.names(down)} {'is' if len(down) == 1 else 'are'} not healthy, and "
            "members restart one at a time only when all others are healthy. Bring "
            f"{view.names(down)} back first.",
            WaitKind.BLOCKED,
        )
    followers = [m for m in due if m is not view.leader]
    if not followers:
        assert view.leader is not None
        return _transfer_away(view, view.leader, "before it restarts on renewed certificates")
    return RenewCertificates(followers[-1].ordinal)


def _upgrade(view: View) -> Plan | None:
    image = view.obs.spec.image
    stale = [m for m in view.members if m.image != image]
    if not stale:
        return None
    if len(view.voters) == 1:
        n = view.name(stale[0].ordinal)
        return Wait(
            f"RaftCluster {view.obs.cluster} has a single voter, so restarting {n} on image "
            f"{image} would stop the cluster; scale it to 3 replicas first, then change the "
            "image.",
            WaitKind.BLOCKED,
        )
    down = [m for m in view.members if not m.healthy]
    if down:
        if len(down) == 1 and down[0] in stale:
            return RollMember(down[0].ordinal, image)  # it is down anyway: restarting costs nothing
        return Wait(
            f"Upgrade to {image} is paused: {view.names(down)} "
            f"{'is' if len(down) == 1 else 'are'} not healthy, and members restart one at a "
            f"time only when all others are healthy. Bring {view.names(down)} back first.",
            WaitKind.BLOCKED,
        )
    followers = [m for m in stale if m is not view.leader]
    target = followers[-1] if followers else view.leader
    assert target is not None
    if target is view.leader:
        return _transfer_away(view, target, f"before it restarts on image {image}")
    return RollMember(target.ordinal, image)


def _transfer_away(view: View, leader: Member, why: str) -> Plan:
    image = view.obs.spec.image
    candidates = [m for m in healthy_voters(view.members) if m is not leader]
    if not candidates:
        return Wait(
            f"Leadership must move away from {view.name(leader.ordinal)} {why}, but no other "
            "voter is healthy; bring another voter back first.",
            WaitKind.BLOCKED,
        )
    best = max(candidates, key=lambda m: (m.image == image, m.raft_index, -m.ordinal))
    return TransferLeadership(leader.ordinal, best.ordinal, best.id)


def _guarded(view: View, result: Plan) -> Plan:
    """Return ``result`` only if a healthy quorum of voters remains right after it."""
    if isinstance(result, Wait):
        return result
    targets_leader = (
        isinstance(result, (RemoveMember, RollMember, RenewCertificates))
        and view.leader is not None
        and result.ordinal == view.leader.ordinal
    )
    if targets_leader:  # the rules move leadership first; never act on the leader itself
        assert view.leader is not None
        return _transfer_away(view, view.leader, "first")
    projected = after(view.members, result)
    if quorate(projected):
        return result
    vs = voters(projected)
    down = [m for m in view.voters if not m.healthy]
    bring_back = f"Bring {view.names(down)} back first." if down else "Add members first."
    return Wait(
        f"Not doing it yet: to {_lower_first(result.describe(view.obs.cluster)[:-1])} would leave "
        f"{len(healthy_voters(projected))} of {len(vs)} voters healthy, fewer than the quorum "
        f"of {quorum(len(vs)) if vs else 1}. {bring_back}",
        WaitKind.BLOCKED,
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


_RULES: tuple[Callable[[View], Plan | None], ...] = (
    _surplus_learner,
    _unpodded_learner,
    _leftovers,
    _learner,
    _replace_lost,
    _scale_up,
    _scale_down,
    _renew,
    _upgrade,
)
