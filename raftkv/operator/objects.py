"""The Kubernetes objects a RaftCluster owns, built as plain dicts (no I/O, no client).

One pod and one volume claim per member (``<cluster>-<ordinal>``), a headless peer
Service (``<cluster>-peer``), a client Service (``<cluster>``) and a PodDisruptionBudget
(``<cluster>``) over the voters.

Invariants:
- every object carries the cluster's labels and an ownerReference to the RaftCluster
  (controller, blockOwnerDeletion), so deleting the RaftCluster deletes it, claims too;
- a member's stable DNS name is ``<pod>.<cluster>-peer.<namespace>.svc``: the pod's
  hostname and subdomain say so, and the peer Service publishes not-ready addresses so
  that peers resolve before they are ready;
- a member's command line uses raftkv's (etcd's) flags only; a pod for a new cluster says
  ``--initial-cluster-state=new`` with itself alone, every other pod ``existing`` with the
  current members (ignored by a member that restarts on its data);
- the PodDisruptionBudget selects voters only (label ``raftkv.dev/voter=true``) with
  maxUnavailable = (voters-1)//2, so an eviction never takes the voters below quorum;
- with ``spec.tls`` on (``raftkv.operator.tls``), client and peer URLs are https, the
  member's server and peer Secrets are mounted read-only and its flags name them; a pod
  built on the operator's own certificates carries their earliest expiry in the
  annotation ``raftkv.dev/certs-not-after`` (Unix seconds), which the planner renews by.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raftkv.operator.quorum import pdb_max_unavailable
from raftkv.operator.tls import PEER_DIR, SERVER_DIR, TLSSpec, member_tls_args

GROUP, VERSION, PLURAL, KIND = "raftkv.dev", "v1alpha1", "raftclusters", "RaftCluster"
CLIENT_PORT, PEER_PORT, METRICS_PORT = 2379, 2380, 2381
DATA_MOUNT = "/var/lib/raftkv/data"
UID = 10001  # the image's non-root user

L_NAME, L_INSTANCE = "app.kubernetes.io/name", "app.kubernetes.io/instance"
L_CLUSTER, L_ORDINAL, L_VOTER = "raftkv.dev/cluster", "raftkv.dev/ordinal", "raftkv.dev/voter"
A_CERTS_NOT_AFTER = "raftkv.dev/certs-not-after"

Obj = dict[str, Any]


@dataclass(frozen=True)
class ClusterSpec:
    """The parts of a RaftCluster the objects are built from (defaults as in the CRD)."""

    name: str
    namespace: str
    uid: str
    replicas: int
    image: str
    storage_size: str = "1Gi"
    storage_class: str | None = None
    heartbeat_ms: int = 100
    election_ms: int = 1000
    snapshot_count: int = 10000
    quota_backend_bytes: int = 2147483648
    resources: Mapping[str, Any] | None = None
    # Members' address, "{pod}.{peer_service}.{namespace}.svc" in a cluster; another
    # template (e.g. "127.0.{ordinal}.1") runs members outside a cluster network (tests).
    host_template: str | None = None
    tls: TLSSpec = field(default_factory=TLSSpec)

    @classmethod
    def of(cls, body: Mapping[str, Any], default_repo: str, default_version: str,
           host_template: str | None = None) -> ClusterSpec:
        meta, spec = body["metadata"], body.get("spec") or {}
        storage = spec.get("storage") or {}
        version = str(spec.get("version") or default_version).removeprefix("v")
        return cls(
            name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
            replicas=int(spec.get("replicas", 3)),
            image=spec.get("image") or f"{default_repo}:{version}",
            storage_size=str(storage.get("size", "1Gi")),
            storage_class=storage.get("storageClassName"),
            heartbeat_ms=int(spec.get("heartbeatIntervalMs", 100)),
            election_ms=int(spec.get("electionTimeoutMs", 1000)),
            snapshot_count=int(spec.get("snapshotCount", 10000)),
            quota_backend_bytes=int(spec.get("quotaBackendBytes", 2147483648)),
            resources=spec.get("resources"),
            host_template=host_template,
            tls=TLSSpec.of(spec.get("tls")),
        )

    # --- names ------------------------------------------------------------------------

    def member(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}"

    @property
    def peer_service(self) -> str:
        return f"{self.name}-peer"

    def host(self, ordinal: int) -> str:
        if self.host_template:
            return self.host_template.format(pod=self.member(ordinal), ordinal=ordinal,
                                             peer_service=self.peer_service,
                                             namespace=self.namespace)
        return f"{self.member(ordinal)}.{self.peer_service}.{self.namespace}.svc"

    def peer_url(self, ordinal: int) -> str:
        return f"{self.tls.scheme}://{self.host(ordinal)}:{PEER_PORT}"

    def client_url(self, ordinal: int) -> str:
        return f"{self.tls.scheme}://{self.host(ordinal)}:{CLIENT_PORT}"

    def metrics_url(self, ordinal: int) -> str:
        return f"http://{self.host(ordinal)}:{METRICS_PORT}"

    def server_secret(self, ordinal: int) -> str:
        """The Secret (kubernetes.io/tls) member ``ordinal`` serves clients with."""
        if self.tls.auto:
            return f"{self.member(ordinal)}-server-tls"
        return self.tls.server_secret

    def peer_secret(self, ordinal: int) -> str:
        """The Secret (kubernetes.io/tls) member ``ordinal`` talks to its peers with."""
        if self.tls.auto:
            return f"{self.member(ordinal)}-peer-tls"
        return self.tls.peer_secret

    @property
    def ca_secret(self) -> str:
        """The operator's CA (Auto mode): ``tls.crt``/``tls.key`` of the CA itself."""
        return f"{self.name}-ca"

    @property
    def client_secret(self) -> str:
        """The client certificate the operator connects to the members with."""
        return f"{self.name}-client-tls" if self.tls.auto else self.tls.client_secret

    @property
    def token(self) -> str:
        """--initial-cluster-token: unique per RaftCluster object, so IDs never collide
        with those of a deleted cluster of the same name."""
        return f"{self.name}-{self.uid[:8]}"

    @property
    def selector(self) -> str:
        return f"{L_CLUSTER}={self.name}"

    def labels(self, ordinal: int | None = None, voter: bool | None = None) -> dict[str, str]:
        out = {L_NAME: "raftkv", L_INSTANCE: self.name, L_CLUSTER: self.name}
        if ordinal is not None:
            out[L_ORDINAL] = str(ordinal)
        if voter is not None:
            out[L_VOTER] = "true" if voter else "false"
        return out

    def owner(self) -> Obj:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": self.name,
                "uid": self.uid, "controller": True, "blockOwnerDeletion": True}

    def _meta(self, name: str, labels: dict[str, str]) -> Obj:
        return {"name": name, "namespace": self.namespace, "labels": labels,
                "ownerReferences": [self.owner()]}


def ordinal_of(peer_url: str, spec: ClusterSpec) -> int | None:
    """The ordinal a member's peer URL names, or None when it is not one of ours."""
    for o in range(64):
        if peer_url == spec.peer_url(o):
            return o
    return None


def member_args(spec: ClusterSpec, ordinal: int, *, new_cluster: bool,
                cluster: Iterable[int] = ()) -> list[str]:
    """The raftkv command line of member ``ordinal``.

    ``cluster`` lists the ordinals of the current members (it always includes the member
    itself); a new cluster starts with this member alone.
    """
    members = sorted({ordinal} if new_cluster else {*cluster, ordinal})
    initial = ",".join(f"{spec.member(o)}={spec.peer_url(o)}" for o in members)
    scheme = spec.tls.scheme
    return [
        "raftkv",
        f"--name={spec.member(ordinal)}",
        f"--data-dir={DATA_MOUNT}",
        f"--listen-peer-urls={scheme}://0.0.0.0:{PEER_PORT}",
        f"--initial-advertise-peer-urls={spec.peer_url(ordinal)}",
        f"--listen-client-urls={scheme}://0.0.0.0:{CLIENT_PORT}",
        f"--advertise-client-urls={spec.client_url(ordinal)}",
        f"--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}",
        f"--initial-cluster={initial}",
        f"--initial-cluster-state={'new' if new_cluster else 'existing'}",
        f"--initial-cluster-token={spec.token}",
        f"--heartbeat-interval={spec.heartbeat_ms}",
        f"--election-timeout={spec.election_ms}",
        f"--snapshot-count={spec.snapshot_count}",
        f"--quota-backend-bytes={spec.quota_backend_bytes}",
        "--logger=json",
        *member_tls_args(spec.tls),
    ]


def _probe(path: str, period: int, failures: int) -> Obj:
    return {"httpGet": {"path": path, "port": METRICS_PORT}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}


def _tls_volumes(spec: ClusterSpec, ordinal: int) -> tuple[list[Obj], list[Obj]]:
    """The member's server and peer Secret volumes and their (read-only) mounts."""
    if not spec.tls.enabled:
        return [], []
    volumes = [{"name": "server-tls", "secret": {"secretName": spec.server_secret(ordinal),
                                                  "defaultMode": 0o440}},
               {"name": "peer-tls", "secret": {"secretName": spec.peer_secret(ordinal),
                                                "defaultMode": 0o440}}]
    mounts = [{"name": "server-tls", "mountPath": SERVER_DIR, "readOnly": True},
              {"name": "peer-tls", "mountPath": PEER_DIR, "readOnly": True}]
    return volumes, mounts


def pod(spec: ClusterSpec, ordinal: int, *, image: str, new_cluster: bool,
        cluster: Iterable[int] = (), voter: bool = False,
        certs_not_after: int | None = None) -> Obj:
    """Member ``ordinal``'s pod; ``certs_not_after`` when it runs on the operator's
    certificates (their earliest expiry, recorded in an annotation)."""
    name = spec.member(ordinal)
    tls_volumes, tls_mounts = _tls_volumes(spec, ordinal)
    container: Obj = {
        "name": "raftkv",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": member_args(spec, ordinal, new_cluster=new_cluster, cluster=cluster),
        "ports": [{"name": "client", "containerPort": CLIENT_PORT},
                  {"name": "peer", "containerPort": PEER_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}, *tls_mounts],
        # gRPC's c-ares resolver may ignore the search domains that peers' names need
        "env": [{"name": "GRPC_DNS_RESOLVER", "value": "native"}],
        # Liveness asks only whether the process serves; a quorum loss must not restart
        # every member. Startup gives a member joining a big log time to come up.
        "startupProbe": _probe("/livez", 2, 60),
        "livenessProbe": _probe("/livez", 10, 3),
        "readinessProbe": _probe("/readyz", 2, 2),
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "runAsUser": UID, "capabilities": {"drop": ["ALL"]}},
    }
    if spec.resources:
        container["resources"] = dict(spec.resources)
    meta = spec._meta(name, spec.labels(ordinal, voter))
    if certs_not_after is not None:
        meta["annotations"] = {A_CERTS_NOT_AFTER: str(certs_not_after)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "hostname": name,
            "subdomain": spec.peer_service,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                "fsGroup": UID},
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}},
                        *tls_volumes],
        },
    }


def claim(spec: ClusterSpec, ordinal: int) -> Obj:
    pvc_spec: Obj = {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": spec.storage_size}}}
    if spec.storage_class:
        pvc_spec["storageClassName"] = spec.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": spec._meta(spec.member(ordinal), spec.labels(ordinal)),
            "spec": pvc_spec}


def _ports() -> list[Obj]:
    return [{"name": "client", "port": CLIENT_PORT, "targetPort": CLIENT_PORT},
            {"name": "peer", "port": PEER_PORT, "targetPort": PEER_PORT},
            {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT}]


def peer_service(spec: ClusterSpec) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": spec._meta(spec.peer_service, spec.labels()),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": spec.labels(), "ports": _ports()}}


def client_service(spec: ClusterSpec) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": spec._meta(spec.name, spec.labels()),
            "spec": {"type": "ClusterIP", "selector": spec.labels(),
                     "ports": [{"name": "client", "port": CLIENT_PORT,
                                "targetPort": CLIENT_PORT}]}}


def disruption_budget(spec: ClusterSpec, voters: int) -> Obj:
    selector = {**spec.labels(), L_VOTER: "true"}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": spec._meta(spec.name, spec.labels()),
            "spec": {"maxUnavailable": pdb_max_unavailable(voters),
                     "selector": {"matchLabels": selector},
                     "unhealthyPodEvictionPolicy": "IfHealthyBudget"}}
