"""The kopf handlers of the RaftCluster resource: every edge and a timer lead to one reconcile.

kopf is edge-triggered: create, resume (operator start), update and a change of
``spec.replicas`` each run one reconcile at once, and a timer reconciles every
``RECONCILE_INTERVAL`` seconds, so that steps follow one another and a cluster changed
behind the operator's back (a pod deleted, a member down) is noticed. The reconcile
itself (``raftkv.operator.reconcile``) decides everything from observed state, so a
restarted operator resumes any step it was killed in.

Invariants:
- the handlers never fail the kopf handler: errors are logged and retried on the next
  tick (the planner's step is idempotent), so kopf records no permanent failure;
- deletion needs no finalizer: every owned object (claims too) carries an ownerReference
  and the garbage collector removes it; the delete handler only reports;
- progress is kept in annotations, because the status schema is the operator's own.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf

from raftkv.operator.kube import Kube, load_config
from raftkv.operator.reconcile import Reconciler, guarded

RESOURCE = ("raftkv.dev", "v1alpha1", "raftclusters")
RECONCILE_INTERVAL = float(os.environ.get("RAFTKV_OPERATOR_INTERVAL", "1"))

_state: dict[str, Reconciler] = {}


def _events(body: Mapping[str, Any], etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message[:1024])


def reconciler() -> Reconciler:
    if "r" not in _state:
        load_config()
        _state["r"] = Reconciler(
            Kube(), _events,
            default_repo=os.environ.get("RAFTKV_IMAGE_REPOSITORY", "raftkv"),
            default_version=os.environ.get("RAFTKV_DEFAULT_VERSION", _own_version()),
            host_template=os.environ.get("RAFTKV_MEMBER_HOST_TEMPLATE") or None,
        )
    return _state["r"]


def _own_version() -> str:
    """The operator's own distribution version: the default raftkv version to run."""
    try:
        return importlib.metadata.version("raftkv")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="raftkv.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="raftkv.dev", key="last-handled-configuration")
    settings.persistence.finalizer = "raftkv.dev/operator"
    settings.posting.level = 20  # INFO: our Normal events are posted too
    settings.watching.server_timeout = 120
    # A killed active replica is given up after this long, so a standby takes over soon.
    settings.peering.lifetime = 20
    reconciler()


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    """On exit, remove the client key files the reconciler wrote (nothing else to undo)."""
    r = _state.pop("r", None)
    if r is not None and r.certs is not None:
        r.certs.close()


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def on_change(body: kopf.Body, **_: Any) -> None:
    await guarded(lambda: reconciler()(body))


@kopf.on.field(*RESOURCE, field="spec.replicas")
async def on_replicas(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
    kopf.info(body, reason="ReplicasChanged", message=f"spec.replicas {old} -> {new}.")
    await guarded(lambda: reconciler()(body))


@kopf.timer(*RESOURCE, interval=RECONCILE_INTERVAL, initial_delay=RECONCILE_INTERVAL)
async def tick(body: kopf.Body, **_: Any) -> None:
    await guarded(lambda: reconciler()(body))


@kopf.on.delete(*RESOURCE, optional=True)
def on_delete(body: kopf.Body, **_: Any) -> None:
    kopf.info(body, reason="Deleting",
              message="Owned pods, claims, Services and the PodDisruptionBudget are "
                      "removed by the garbage collector (ownerReferences).")
