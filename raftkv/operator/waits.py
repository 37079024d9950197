"""The waits decided before and after the planner's rules, each with an actionable reason.

Before the rules: no member answers (bootstrap, restart the pods of remaining volume
claims, or wait), no healthy quorum or no leader
(nothing may change), or the recorded step has not taken full effect. After the rules:
nothing left to do, converged or with an unhealthy member to look at.

Invariant: every reason is one or more sentences naming the member, pod or command to
look at; none of these functions returns a step other than :class:`Bootstrap` or a
:class:`CreatePod` for a volume claim that has no pod.
"""

from __future__ import annotations

from raftkv.operator.quorum import healthy_voters, quorate, quorum
from raftkv.operator.types import (
    AddLearner,
    Bootstrap,
    CreatePod,
    Observed,
    RenewCertificates,
    RollMember,
    Step,
    Wait,
    WaitKind,
)
from raftkv.operator.view import View


def without_members(obs: Observed) -> Wait | Step:
    c = obs.cluster
    unpodded = sorted(obs.claims - obs.pods)
    if unpodded:
        # Nobody answers, and members' volumes have no pod: start them again on their
        # data (a member restarted with its data rejoins as itself; this changes no
        # membership, so it needs no quorum).
        return CreatePod(unpodded[0])
    if not obs.pods:
        return Bootstrap(obs.spec.image)
    expired = [o for o, not_after in obs.pod_certs if not_after <= obs.now]
    if expired and obs.spec.renew_before is not None:
        # Nobody answers and certificates have expired (the operator was away too long):
        # restarting a pod that cannot serve anyway costs nothing.
        return RenewCertificates(expired[0])
    if isinstance(obs.in_progress, Bootstrap):
        return Wait(
            f"Waiting for {c}-0 to start and bootstrap the cluster; if it does not, "
            f"check `kubectl describe pod {c}-0` and `kubectl logs {c}-0`.",
            WaitKind.SETTLING,
        )
    return Wait(
        f"No member of {c} answers although it has {len(obs.pods)} pod(s); check the pods "
        f"and their logs (`kubectl get pods`, `kubectl logs {c}-{min(obs.pods)}`). "
        "Nothing is changed until a member answers.",
        WaitKind.BLOCKED,
    )


def no_quorum_or_leader(view: View) -> Wait | None:
    vs = view.voters
    healthy = healthy_voters(view.members)
    if not vs:
        return Wait(
            f"RaftCluster {view.obs.cluster} has no voting member, only learners; it cannot "
            "elect a leader, so restore it from a backup.",
            WaitKind.BLOCKED,
        )
    if not quorate(view.members):
        down = [m for m in vs if not m.healthy]
        return Wait(
            f"Quorum lost: only {len(healthy)} of {len(vs)} voters are healthy and "
            f"{quorum(len(vs))} are needed. Bring {view.names(down)} back; if their data "
            f"is gone, restore {view.obs.cluster} from a backup. Nothing is changed meanwhile.",
            WaitKind.BLOCKED,
        )
    if view.leader is None:
        return Wait(
            f"No leader yet, though {len(healthy)} of {len(vs)} voters are healthy; membership "
            f"changes wait for an election. If this lasts, check the network between "
            f"{view.names(healthy)}.",
            WaitKind.SETTLING,
        )
    return None


def settling(view: View) -> Wait | None:
    """The recorded step took effect but its member has not come up yet."""
    step = view.obs.in_progress
    if isinstance(step, RollMember) and step.image == view.obs.spec.image:
        m = view.member(step.ordinal)
        if m is not None and m.image == step.image and not m.healthy and not m.data_lost:
            n = view.name(m.ordinal)
            return Wait(
                f"Waiting for {n} to come back on image {step.image}; if it stays down, "
                f"check `kubectl logs {n}`, and set the previous image back if the new one "
                "is broken.",
                WaitKind.SETTLING,
            )
    if isinstance(step, RenewCertificates):
        m = view.member(step.ordinal)
        before = view.obs.spec.renew_before
        renewed = (m is not None and m.cert_not_after is not None and before is not None
                   and m.cert_not_after - view.obs.now > before)
        if m is not None and renewed and not m.healthy and not m.data_lost:
            n = view.name(m.ordinal)
            return Wait(
                f"Waiting for {n} to come back on renewed certificates; if it stays down, "
                f"check `kubectl logs {n}` for a TLS error.",
                WaitKind.SETTLING,
            )
    ordinal = None
    if isinstance(step, (CreatePod, AddLearner)) and step.ordinal in view.obs.pods:
        ordinal = step.ordinal
    if ordinal is not None:
        m = view.member(ordinal)
        if m is not None and not m.healthy and not m.data_lost:
            n = view.name(ordinal)
            return Wait(
                f"Waiting for pod {n} to start and its member to connect; if it does not, "
                f"check `kubectl describe pod {n}` and `kubectl logs {n}`.",
                WaitKind.SETTLING,
            )
    return None


def idle(view: View) -> Wait:
    down = [m for m in view.members if not m.healthy]
    c, leader = view.obs.cluster, view.leader
    assert leader is not None
    if down:
        return Wait(
            f"RaftCluster {c} matches its spec, but {view.names(down)} "
            f"{'is' if len(down) == 1 else 'are'} unhealthy; check "
            f"`kubectl logs {view.name(down[0].ordinal)}`.",
            WaitKind.BLOCKED,
        )
    return Wait(
        f"RaftCluster {c} matches its spec: {view.replicas} voter(s) on image "
        f"{view.obs.spec.image}, led by {view.name(leader.ordinal)}.",
        WaitKind.CONVERGED,
    )
