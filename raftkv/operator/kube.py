"""The operator's Kubernetes calls: read the owned objects, create and delete them, write status.

A thin layer over the official ``kubernetes`` client (synchronous; every call runs in a
worker thread so the operator's event loop keeps serving). Objects come from
``raftkv.operator.objects``.

Invariants:
- creation is idempotent (AlreadyExists is success) and deletion too (NotFound is
  success), so a step re-executed after a restart does no harm;
- the Services and the PodDisruptionBudget are created if absent and patched towards the
  desired spec; pods are never patched except for the voter label;
- status is written only through the status subresource, with a merge patch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from raftkv.operator import objects
from raftkv.operator.objects import (
    A_CERTS_NOT_AFTER,
    L_CLUSTER,
    L_ORDINAL,
    L_VOTER,
    ClusterSpec,
)
from raftkv.operator.observe import PodInfo
from raftkv.operator.tlsmode import client_scheme

T = TypeVar("T")


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _ignore(status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status != status:
            raise
        return None


class Kube:
    """Calls for one RaftCluster's namespace."""

    def __init__(self) -> None:
        self.core = client.CoreV1Api()
        self.policy = client.PolicyV1Api()
        self.custom = client.CustomObjectsApi()

    # --- reads -------------------------------------------------------------------------

    async def pods(self, spec: ClusterSpec) -> dict[int, PodInfo]:
        lst: Any = await _run(self.core.list_namespaced_pod, spec.namespace,
                              label_selector=f"{L_CLUSTER}={spec.name}")
        out = {}
        for p in lst.items:
            labels = p.metadata.labels or {}
            if L_ORDINAL not in labels or not _owned_by(p.metadata, spec):
                continue
            o = int(labels[L_ORDINAL])
            c0 = p.spec.containers[0] if p.spec.containers else None
            image = str(c0.image or "") if c0 is not None else ""
            argv = [*(c0.command or []), *(c0.args or [])] if c0 is not None else []
            out[o] = PodInfo(o, image, (p.status.phase if p.status else "") or "",
                             p.metadata.deletion_timestamp is not None, labels.get(L_VOTER),
                             _int((p.metadata.annotations or {}).get(A_CERTS_NOT_AFTER)),
                             client_scheme(argv))
        return out

    async def claims(self, spec: ClusterSpec) -> frozenset[int]:
        lst: Any = await _run(self.core.list_namespaced_persistent_volume_claim,
                              spec.namespace, label_selector=f"{L_CLUSTER}={spec.name}")
        return frozenset(
            int((c.metadata.labels or {})[L_ORDINAL]) for c in lst.items
            if L_ORDINAL in (c.metadata.labels or {}) and c.metadata.deletion_timestamp is None
            and _owned_by(c.metadata, spec))

    # --- owned objects -------------------------------------------------------------------

    async def ensure_services(self, spec: ClusterSpec, voters: int) -> None:
        ns = spec.namespace
        for svc in (objects.peer_service(spec), objects.client_service(spec)):
            name = svc["metadata"]["name"]
            created = await _run(_ignore, 409, self.core.create_namespaced_service, ns, svc)
            if created is None:
                await _run(self.core.patch_namespaced_service, name, ns,
                           {"metadata": {"labels": svc["metadata"]["labels"]},
                            "spec": {"selector": svc["spec"]["selector"]}})
        pdb = objects.disruption_budget(spec, voters)
        created = await _run(_ignore, 409,
                             self.policy.create_namespaced_pod_disruption_budget, ns, pdb)
        if created is None:
            await _run(self.policy.patch_namespaced_pod_disruption_budget, spec.name, ns,
                       {"spec": {"maxUnavailable": pdb["spec"]["maxUnavailable"]}})

    async def label_voter(self, spec: ClusterSpec, ordinal: int, voter: bool) -> None:
        await _run(_ignore, 404, self.core.patch_namespaced_pod, spec.member(ordinal),
                   spec.namespace,
                   {"metadata": {"labels": {L_VOTER: "true" if voter else "false"}}})

    async def create_claim(self, spec: ClusterSpec, ordinal: int) -> bool:
        """Create the claim if absent; False while an old claim of that name terminates
        (a pod must not be bound to a claim on its way out)."""
        old: Any = await _run(_ignore, 404, self.core.read_namespaced_persistent_volume_claim,
                              spec.member(ordinal), spec.namespace)
        if old is not None:
            return old.metadata.deletion_timestamp is None
        await _run(_ignore, 409, self.core.create_namespaced_persistent_volume_claim,
                   spec.namespace, objects.claim(spec, ordinal))
        return True

    async def create_pod(self, body: dict[str, Any]) -> None:
        await _run(_ignore, 409, self.core.create_namespaced_pod,
                   body["metadata"]["namespace"], body)

    async def delete_pod(self, spec: ClusterSpec, ordinal: int) -> None:
        await _run(_ignore, 404, self.core.delete_namespaced_pod, spec.member(ordinal),
                   spec.namespace)

    async def delete_claim(self, spec: ClusterSpec, ordinal: int) -> None:
        await _run(_ignore, 404, self.core.delete_namespaced_persistent_volume_claim,
                   spec.member(ordinal), spec.namespace)

    async def pod_gone(self, spec: ClusterSpec, ordinal: int) -> bool:
        got = await _run(_ignore, 404, self.core.read_namespaced_pod, spec.member(ordinal),
                         spec.namespace)
        return got is None

    # --- secrets ----------------------------------------------------------------------------

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's (base64) data, or None when it does not exist."""
        got: Any = await _run(_ignore, 404, self.core.read_namespaced_secret, name, namespace)
        return None if got is None else dict(got.data or {})

    async def create_secret(self, body: dict[str, Any]) -> bool:
        """Create the Secret; False when one of that name exists already."""
        made = await _run(_ignore, 409, self.core.create_namespaced_secret,
                          body["metadata"]["namespace"], body)
        return made is not None

    async def replace_secret(self, body: dict[str, Any]) -> None:
        await _run(self.core.replace_namespaced_secret, body["metadata"]["name"],
                   body["metadata"]["namespace"], body)

    # --- status -----------------------------------------------------------------------------

    async def patch_status(self, spec: ClusterSpec, status: dict[str, Any]) -> None:
        await _run(self.custom.patch_namespaced_custom_object_status, objects.GROUP,
                   objects.VERSION, spec.namespace, objects.PLURAL, spec.name,
                   {"status": status})


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _owned_by(meta: Any, spec: ClusterSpec) -> bool:
    return any(r.uid == spec.uid for r in (meta.owner_references or []))
