"""One reconcile of one RaftCluster: observe, plan, record, execute, report.

The loop the kopf handlers and the timer call, under a per-cluster lock so that at most
one reconcile of a cluster runs at a time in this process (kopf peering makes sure only
one operator process acts).

Invariants:
- the step is written to ``status.inProgress`` (with the rest of the status) before it
  is executed, and every step gets a Normal Event naming it; a refusal by the cluster
  gets a Warning Event and is retried on the next tick;
- a wait changes nothing but the status; it gets an Event (Warning when blocked) only
  when its message changed other than in its numbers (a learner's raft index while it
  catches up), so neither a blocked nor a progressing cluster floods the Event stream;
- the recorded step is cleared once the planner says the cluster has converged;
- owned Services and the PodDisruptionBudget are kept in shape on every reconcile, and
  each member pod's voter label follows the Raft configuration (the PDB selects on it);
- with TLS on, the operator's client certificate (and in Auto mode the CA) is ensured
  before the members are asked anything; a missing Secret the spec names is a blocked
  wait with a Warning Event saying which, and nothing else happens meanwhile;
- the TLS mode acted on is the one the members run (``raftkv.operator.tlsmode``:
  ``status.tls.mode``, else the pods' URLs, else the spec), recorded in ``status.tls``;
  a cluster from before ``spec.tls`` stays on plain text, with one Warning Event when
  the operator first finds it so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from raftkv.operator.certstore import CertsMissing, CertStore
from raftkv.operator.execute import Executor, StepRefused
from raftkv.operator.kube import Kube
from raftkv.operator.objects import ClusterSpec
from raftkv.operator.observe import Observation, observe_members
from raftkv.operator.planner import plan
from raftkv.operator.status import decode_step, plan_message, plan_reason, status_of
from raftkv.operator.tlsmode import LEGACY_REASON, decide, recorded_mode
from raftkv.operator.types import Plan, Step, Wait, WaitKind

log = logging.getLogger("raftkv.operator")

# (object body, type "Normal"/"Warning", reason, message) -> None
EventSink = Callable[[Mapping[str, Any], str, str, str], None]


@dataclass
class Reconciler:
    kube: Kube
    events: EventSink
    default_repo: str = "raftkv"
    default_version: str = "0.1.0"
    host_template: str | None = None  # see ClusterSpec.host_template
    certs: CertStore | None = None  # made on first use, over ``kube``
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _missing: dict[str, str] = field(default_factory=dict)  # uid -> last CertsMissing
    _legacy: set[str] = field(default_factory=set)  # uids warned of PlainTextBeforeTLS

    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    async def __call__(self, body: Mapping[str, Any]) -> Plan:
        async with self.lock(body["metadata"]["uid"]):
            return await self._reconcile(body)

    async def _reconcile(self, body: Mapping[str, Any]) -> Plan:
        spec = ClusterSpec.of(body, self.default_repo, self.default_version,
                              self.host_template)
        previous = dict(body.get("status") or {})
        recorded = decode_step(previous.get("inProgress"))
        generation = int(body["metadata"].get("generation") or 0)
        if self.certs is None:
            self.certs = CertStore(self.kube)
        now = int(time.time())
        pods = await self.kube.pods(spec)
        spec_mode = spec.tls.mode
        decision = decide(spec_mode, recorded_mode(previous.get("tls")),
                          (p.client_scheme for p in pods.values()))
        if decision.mode is not spec_mode:
            spec = replace(spec, tls=replace(spec.tls, mode=decision.mode))
        uid = body["metadata"]["uid"]
        if decision.legacy and recorded_mode(previous.get("tls")) is None \
                and uid not in self._legacy:  # (the body of the next tick may be stale)
            self._legacy.add(uid)
            self.events(body, "Warning", LEGACY_REASON, decision.message(spec_mode, spec.name))
        try:
            tls = await self.certs.client(spec, now)
        except CertsMissing as exc:
            wait = Wait(f"{exc}.", WaitKind.BLOCKED)
            uid = body["metadata"]["uid"]
            if self._missing.get(uid) != wait.reason:  # once per cause, not every tick
                self._missing[uid] = wait.reason
                self.events(body, "Warning", "CertificatesMissing", wait.reason)
            return wait
        self._missing.pop(body["metadata"]["uid"], None)
        claims = await self.kube.claims(spec)
        members, leader_id = await observe_members(spec, pods, tls=tls)
        obs = Observation(spec, pods, claims, members, leader_id, recorded, now=now, tls=tls,
                          tls_decision=decision, spec_tls_mode=spec_mode,
                          client_not_after=self.certs.client_not_after.get(
                              (spec.namespace, spec.name)) if tls is not None else None)
        p = plan(obs.observed())
        voters = sum(1 for m in members or [] if not m.learner)
        await self.kube.ensure_services(spec, max(1, voters))
        for m in members or []:
            want = "false" if m.learner else "true"
            pod = pods.get(m.ordinal)
            if pod is not None and not pod.terminating and pod.voter_label != want:
                await self.kube.label_voter(spec, m.ordinal, not m.learner)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(p, Step):
            status = status_of(obs, p, generation=generation, now=stamp, previous=previous,
                               in_progress=p)
            await self.kube.patch_status(spec, status)
            message = plan_message(p, spec.name)
            log.info("%s/%s: %s", spec.namespace, spec.name, message)
            self.events(body, "Normal", plan_reason(p), message)
            try:
                await Executor(self.kube, certs=self.certs).run(p, obs)
            except StepRefused as exc:
                self.events(body, "Warning", "StepRefused",
                            f"{message[:-1]} was refused: {exc}; trying again.")
            return p
        keep = None if p.kind is WaitKind.CONVERGED else recorded
        status = status_of(obs, p, generation=generation, now=stamp, previous=previous,
                           in_progress=keep)
        if _changed(previous, status):
            await self.kube.patch_status(spec, status)
        if _event_key(_wait_message(previous)) != _event_key(p.reason):
            kind = "Warning" if p.kind is WaitKind.BLOCKED else "Normal"
            self.events(body, kind, plan_reason(p), p.reason)
        return p


def _wait_message(status: Mapping[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing":
            return str(c.get("message"))
    return None


def _event_key(message: str | None) -> str | None:
    """A wait's message with its free-standing numbers blanked (names such as demo-3 are
    kept): progress alone is not news."""
    return None if message is None else re.sub(r"(?<![\w.-])\d+(\.\d+)?%?", "#", message)


def _changed(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return any(previous.get(k) != v for k, v in status.items())


async def guarded(fn: Callable[[], Awaitable[Plan]]) -> Plan | None:
    """Run one reconcile; an unexpected error is logged and left to the next tick."""
    try:
        return await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("reconcile failed; the next tick tries again")
        return None


__all__ = ["Reconciler", "Wait", "guarded"]
