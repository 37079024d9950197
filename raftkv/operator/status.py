"""The RaftCluster's status, computed from one observation and the planner's answer (pure).

:func:`status_of` returns the whole status document the operator writes through the
status subresource; :func:`encode_step`/:func:`decode_step` carry the step in flight
(``status.inProgress``), the operator's only memory across restarts.

Invariants:
- conditions are Available (a healthy quorum with a leader), Progressing (a step is
  being taken or is settling), Degraded (a member is unhealthy or the planner is
  blocked) and TLS (False when the members run plain text from before spec.tls while
  the spec asks for TLS: ``raftkv.operator.tlsmode``); each has a CamelCase reason and
  a message a person can act on, and keeps its lastTransitionTime while its status does
  not change;
- ``tls.mode`` is the mode the members run (the operator's record of it, which later
  reconciles trust over the spec), ``tls.notAfter`` the earliest expiry it knows of
  (members' certificates, its client certificate), RFC 3339;
- readyReplicas counts healthy members, replicas all members in the Raft configuration
  (what /scale reads), selector selects the member pods;
- a recorded step decodes to the same step (``decode_step(encode_step(s)) == s``), and
  anything that does not decode is no step (the planner then decides from scratch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from raftkv.operator import types as t
from raftkv.operator.observe import Observation
from raftkv.operator.quorum import quorate
from raftkv.operator.tlsmode import LEGACY_REASON, ModeDecision
from raftkv.operator.types import Plan, Step, Wait, WaitKind

STEP_TYPES: dict[str, type[Step]] = {
    cls.__name__: cls for cls in (
        t.Bootstrap, t.AddLearner, t.CreatePod, t.DeletePod, t.PromoteLearner,
        t.TransferLeadership, t.RemoveMember, t.DeleteVolumeClaim, t.RollMember,
        t.RenewCertificates)
}
WAIT_REASONS = {WaitKind.CONVERGED: "Converged", WaitKind.SETTLING: "Settling",
                WaitKind.CATCHING_UP: "LearnerCatchingUp", WaitKind.BLOCKED: "Blocked"}


def encode_step(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"step": type(step).__name__}
    for f in dataclasses.fields(step):
        v = getattr(step, f.name)
        out[f.name] = v.value if isinstance(v, t.RemovalCause) else v
    return out


def decode_step(doc: Mapping[str, Any] | None) -> Step | None:
    if not doc or doc.get("step") not in STEP_TYPES:
        return None
    cls = STEP_TYPES[doc["step"]]
    kwargs: dict[str, Any] = {}
    try:
        for f in dataclasses.fields(cls):
            v = doc[f.name]
            kwargs[f.name] = t.RemovalCause(v) if f.name == "cause" else v
        return cls(**kwargs)
    except (KeyError, ValueError, TypeError):
        return None


def rfc3339(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_reason(plan: Plan) -> str:
    """The Event/condition reason of a plan: the step's class name, or the wait's kind."""
    return type(plan).__name__ if isinstance(plan, Step) else WAIT_REASONS[plan.kind]


def plan_message(plan: Plan, cluster: str) -> str:
    return plan.describe(cluster) if isinstance(plan, Step) else plan.reason


def _condition(ctype: str, ok: bool, reason: str, message: str, now: str,
               generation: int, previous: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == ctype), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since, "observedGeneration": generation}


def _phase(obs: Observation, plan: Plan, available: bool) -> str:
    if obs.members is None:
        return "Bootstrapping" if isinstance(plan, t.Bootstrap) or isinstance(
            obs.in_progress, t.Bootstrap) else "Pending"
    if not available:
        return "Failed" if isinstance(plan, Wait) and plan.kind is WaitKind.BLOCKED else (
            "Bootstrapping" if isinstance(obs.in_progress, t.Bootstrap) else "Degraded")
    step = plan if isinstance(plan, Step) else obs.in_progress
    if isinstance(plan, Wait) and plan.kind is WaitKind.CONVERGED:
        return "Running"
    if isinstance(plan, Wait) and plan.kind is WaitKind.BLOCKED:
        return "Degraded"
    if isinstance(step, (t.RollMember, t.TransferLeadership, t.RenewCertificates)):
        return "Upgrading"
    return "Scaling"


def status_of(obs: Observation, plan: Plan, *, generation: int, now: str,
              previous: Mapping[str, Any] | None = None,
              in_progress: Step | None = None) -> dict[str, Any]:
    """The status document for ``obs`` after the planner answered ``plan``."""
    prev_conditions = list((previous or {}).get("conditions") or [])
    observed = obs.observed()
    members = observed.members or ()
    available = bool(members) and quorate(members) and obs.leader is not None
    unhealthy = [obs.spec.member(m.ordinal) for m in members if not m.healthy]
    cluster = obs.spec.name
    message = plan_message(plan, cluster)
    progressing = isinstance(plan, Step) or (
        isinstance(plan, Wait) and plan.kind in (WaitKind.SETTLING, WaitKind.CATCHING_UP))
    blocked = isinstance(plan, Wait) and plan.kind is WaitKind.BLOCKED
    if available:
        leader = obs.leader
        assert leader is not None
        avail = ("QuorumHealthy",
                 f"{sum(m.healthy and m.voter for m in members)} of "
                 f"{sum(m.voter for m in members)} voters are healthy, led by "
                 f"{obs.spec.member(leader.ordinal)}.")
    elif obs.members is None:
        avail = ("NoMemberAnswers", message)
    elif members and quorate(members):
        avail = ("NoLeader", message)
    else:
        avail = ("QuorumLost", message)
    decision = obs.tls_decision or ModeDecision(obs.spec.tls.mode)
    if blocked:
        degraded = ("Blocked", message)
    elif unhealthy:
        degraded = ("MembersUnhealthy", f"Unhealthy: {', '.join(unhealthy)}.")
    else:
        degraded = ("AllMembersHealthy", "Every member is healthy.")
    conditions = [
        _condition("Available", available, *avail, now, generation, prev_conditions),
        _condition("Progressing", progressing, plan_reason(plan), message, now, generation,
                   prev_conditions),
        _condition("Degraded", blocked or bool(unhealthy), *degraded, now, generation,
                   prev_conditions),
        _condition("TLS", not decision.legacy,
                   LEGACY_REASON if decision.legacy else "AsSpecified",
                   decision.message(obs.spec_tls_mode or obs.spec.tls.mode, cluster), now,
                   generation, prev_conditions),
    ]
    tls: dict[str, Any] = {"mode": obs.spec.tls.mode.value}
    if obs.certs_not_after is not None:
        tls["notAfter"] = rfc3339(obs.certs_not_after)
    leader = obs.leader
    out: dict[str, Any] = {
        "phase": _phase(obs, plan, available),
        "observedGeneration": generation,
        "replicas": len(members),
        "readyReplicas": sum(1 for m in members if m.healthy),
        "voters": sum(1 for m in members if m.voter),
        "learners": sum(1 for m in members if m.learner),
        "leader": obs.spec.member(leader.ordinal) if leader is not None else "",
        "term": obs.term,
        "raftIndex": leader.status.raft_index if leader is not None and leader.status else 0,
        "selector": obs.spec.selector,
        "image": obs.spec.image,
        "members": [
            {"name": obs.spec.member(mi.ordinal), "id": f"{mi.id:x}",
             "leader": mi.id == obs.leader_id, "learner": mi.learner,
             "healthy": obs.healthy(mi),
             "raftIndex": mi.status.raft_index if mi.status else 0,
             "version": mi.version,
             "image": obs.pods[mi.ordinal].image if mi.ordinal in obs.pods else ""}
            for mi in sorted(obs.members or [], key=lambda m: m.ordinal)
        ],
        "conditions": conditions,
        "tls": tls,
        "inProgress": encode_step(in_progress) if in_progress is not None else None,
    }
    return out
