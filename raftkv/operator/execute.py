"""Carry out one planner step against Kubernetes and the members, idempotently.

Each step checks before it acts, because the operator may have died after acting and
before recording that it had (the planner then returns the same step again):
- AddLearner: nothing if a member with that peer URL exists already;
- PromoteLearner/RemoveMember: "not a learner"/"member not found" mean done;
- CreatePod/Bootstrap: AlreadyExists is success, the claim is created first;
- DeletePod/DeleteVolumeClaim: NotFound is success;
- TransferLeadership: nothing if the target leads already;
- RollMember: nothing if the pod runs the image; else the pod is deleted, its deletion
  awaited (bounded), and the pod created again on the same claim with the new image;
- RenewCertificates: the member's certificates are issued anew only if due (or absent),
  and the pod restarted as in RollMember (same image) only if it does not run on them.

In Auto TLS mode every pod is created on its member's certificates, issued first if they
are absent or due, and records their expiry in its annotation.

Membership calls go to the leader (the planner issues them only when one is known);
a refusal by the cluster (e.g. a learner not caught up yet) raises :class:`StepRefused`,
which the caller reports and retries on its next tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from raftkv.client import EtcdError
from raftkv.operator import objects
from raftkv.operator.certstore import CertStore
from raftkv.operator.kube import Kube
from raftkv.operator.observe import Observation, client_for
from raftkv.operator.types import (
    AddLearner,
    Bootstrap,
    CreatePod,
    DeletePod,
    DeleteVolumeClaim,
    PromoteLearner,
    RemoveMember,
    RenewCertificates,
    RollMember,
    Step,
    TransferLeadership,
)

POD_GONE_TIMEOUT = 60.0


class StepRefused(Exception):
    """The cluster or Kubernetes refused the step for now; the message says why."""


class Executor:
    def __init__(self, kube: Kube, endpoints: Mapping[int, str] | None = None,
                 certs: CertStore | None = None) -> None:
        self.kube = kube
        self.endpoints = endpoints
        self.certs = certs

    async def run(self, step: Step, obs: Observation) -> None:
        spec = obs.spec
        if isinstance(step, Bootstrap):
            await self._create_pod(obs, 0, new_cluster=True)
        elif isinstance(step, AddLearner):
            url = spec.peer_url(step.ordinal)
            members = await self._leader_call(obs, "list")
            if members is not None and url in members:
                return
            await self._leader_call(obs, "add", peer_url=url)
        elif isinstance(step, CreatePod):
            await self._create_pod(obs, step.ordinal, new_cluster=False)
        elif isinstance(step, DeletePod):
            await self.kube.delete_pod(spec, step.ordinal)
        elif isinstance(step, DeleteVolumeClaim):
            await self.kube.delete_claim(spec, step.ordinal)
        elif isinstance(step, PromoteLearner):
            await self._leader_call(obs, "promote", member_id=step.member_id)
        elif isinstance(step, RemoveMember):
            await self._leader_call(obs, "remove", member_id=step.member_id)
        elif isinstance(step, TransferLeadership):
            if obs.leader_id == step.to_id:
                return
            await self._leader_call(obs, "move", member_id=step.to_id)
        elif isinstance(step, RollMember):
            pod = obs.pods.get(step.ordinal)
            if pod is not None and pod.image == step.image and not pod.terminating:
                return
            await self._restart(obs, step.ordinal, step.image)
        elif isinstance(step, RenewCertificates):
            await self._renew(obs, step)
        else:  # pragma: no cover - the planner returns only the steps above
            raise AssertionError(f"unknown step {step!r}")

    async def _create_pod(self, obs: Observation, ordinal: int, *, new_cluster: bool,
                          image: str | None = None) -> None:
        spec = obs.spec
        cluster = ({m.ordinal for m in obs.members} if obs.members is not None
                   else set(obs.claims) | set(obs.pods))
        member = next((m for m in obs.members or [] if m.ordinal == ordinal), None)
        if not await self.kube.create_claim(spec, ordinal):
            raise StepRefused(f"the old volume claim {spec.member(ordinal)} is still being "
                              "deleted")
        not_after = await self._member_certs(obs, ordinal)
        await self.kube.create_pod(objects.pod(
            spec, ordinal, image=image or spec.image, new_cluster=new_cluster,
            cluster=cluster, voter=new_cluster or (member is not None and not member.learner),
            certs_not_after=not_after))

    async def _member_certs(self, obs: Observation, ordinal: int) -> int | None:
        """Auto TLS: the member's certificates, issued if absent or due; their expiry."""
        if not obs.spec.tls.auto:
            return None
        if self.certs is None:
            raise StepRefused("the operator has no certificate store, so it cannot create "
                              "a member of a cluster with spec.tls.mode Auto")
        return await self.certs.member(obs.spec, ordinal, obs.now)

    async def _renew(self, obs: Observation, step: RenewCertificates) -> None:
        not_after = await self._member_certs(obs, step.ordinal)
        pod = obs.pods.get(step.ordinal)
        if pod is not None and pod.certs_not_after == not_after and not pod.terminating:
            return
        await self._restart(obs, step.ordinal, pod.image if pod else obs.spec.image)

    async def _restart(self, obs: Observation, ordinal: int, image: str) -> None:
        """Delete the member's pod, await its deletion (bounded), create it again."""
        if ordinal in obs.pods:
            await self.kube.delete_pod(obs.spec, ordinal)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + POD_GONE_TIMEOUT
            while not await self.kube.pod_gone(obs.spec, ordinal):
                if loop.time() > deadline:
                    raise StepRefused(f"pod {obs.spec.member(ordinal)} is still "
                                      f"terminating after {POD_GONE_TIMEOUT:.0f} s")
                await asyncio.sleep(0.5)  # polling the API for the deletion, bounded
        await self._create_pod(obs, ordinal, new_cluster=False, image=image)

    async def _leader_call(self, obs: Observation, what: str, *, peer_url: str = "",
                           member_id: int = 0) -> set[str] | None:
        leader = obs.leader
        if leader is None:
            raise StepRefused("no leader is known, so the membership cannot change")
        try:
            c = client_for(obs.spec, leader.ordinal, self.endpoints, timeout=10.0,
                           tls=obs.tls)
        except EtcdError as exc:
            raise StepRefused(f"cannot reach the leader: {exc.detail}") from exc
        try:
            if what == "list":
                ml = await c.member_list(linearizable=True)
                return {u for m in ml.members for u in m.peer_urls}
            if what == "add":
                await c.member_add([peer_url], is_learner=True)
            elif what == "promote":
                await c.member_promote(member_id)
            elif what == "remove":
                await c.member_remove(member_id)
            elif what == "move":
                await c.move_leader(member_id)
        except EtcdError as exc:
            detail = exc.detail.lower()
            if what == "promote" and "can only promote a learner member" in detail \
                    and "in sync" not in detail:
                return None  # promoted already
            if what == "remove" and "member not found" in detail:
                return None  # removed already
            raise StepRefused(f"{obs.spec.member(leader.ordinal)} refused: {exc.detail}") \
                from exc
        finally:
            await c.close()
        return None
