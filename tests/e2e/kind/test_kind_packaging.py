"""The operator's packaging against a real cluster: the kustomize base and the Helm chart.

``kubectl apply -k manifests`` must succeed on a fresh cluster in one pass and install the
CRDs and RBAC the operator contract names; ``kubectl auth can-i`` (as the operator's
ServiceAccount) must grant what the operator needs and refuse what it must not have.
``helm install`` of charts/raftkv-operator with ``replicas=2`` must be accepted by the API
server (server-side validation of every template) and create the peering object. Whether
the operator pods become ready is the operator's own e2e tests' business.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.kind import REPO, KindCluster

pytestmark = [pytest.mark.kind, pytest.mark.slow]

SA = "system:serviceaccount:raftkv-system:raftkv-operator"
CRDS = ("crd/raftclusters.raftkv.dev", "crd/clusterkopfpeerings.kopf.dev")
ALLOWED = [
    ("patch", "raftclusters.raftkv.dev", "status"),
    ("watch", "raftclusters.raftkv.dev", None),
    ("create", "pods", None),
    ("delete", "persistentvolumeclaims", None),
    ("create", "poddisruptionbudgets.policy", None),
    ("create", "events.events.k8s.io", None),
    ("patch", "clusterkopfpeerings.kopf.dev", None),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("get", "secrets", None),  # spec.tls: Secrets by name (get, create, update) only
    ("create", "secrets", None),
]
DENIED = [
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("delete", "secrets", None),
    ("create", "deployments.apps", None),
    ("patch", "nodes", None),
    ("delete", "raftclusters.raftkv.dev", None),
]


def can_i(k: KindCluster, verb: str, resource: str, sub: str | None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={SA}", "--all-namespaces"]
    if sub:
        args.append(f"--subresource={sub}")
    out = k.kubectl(*args, check=False)
    assert out.stdout.strip() in ("yes", "no"), out
    return out.stdout.strip() == "yes"


def test_kustomize_base_applies_in_one_pass_with_the_contract_rbac(
        kind_cluster: KindCluster) -> None:
    k = kind_cluster
    base = str(REPO / "manifests")
    k.kubectl("apply", "-k", base)
    try:
        k.kubectl("wait", "--for=condition=Established", "--timeout=60s", *CRDS)
        for verb, resource, sub in ALLOWED:
            assert can_i(k, verb, resource, sub), f"operator cannot {verb} {resource} {sub}"
        for verb, resource, sub in DENIED:
            assert not can_i(k, verb, resource, sub), f"operator may {verb} {resource}"
        dep = json.loads(k.kubectl("-n", "raftkv-system", "get", "deploy/raftkv-operator",
                                   "-o", "json").stdout)
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "raftkv:0.1.0"
    finally:
        k.kubectl("delete", "-k", base, "--wait=true", "--timeout=120s", check=False,
                  timeout=150)
        # the next test installs the chart, whose CRs cannot be created while these CRDs
        # are still terminating: wait until they are gone, and say so if they are not
        gone = k.kubectl("wait", "--for=delete", "--timeout=120s", *CRDS, check=False,
                         timeout=150)
        assert gone.returncode == 0 or "not found" in gone.stderr, (
            f"CRDs of the kustomize base not deleted: {gone.stderr}")


def test_helm_install_with_two_replicas(kind_cluster: KindCluster) -> None:
    k = kind_cluster
    ns = f"op-{secrets.token_hex(3)}"
    release = "raftkv-operator"
    try:
        # inside the try: a half-done install leaves cluster-scoped objects (ClusterRole,
        # peering) owned by this release, which would refuse the next test's install
        k.helm("install", release, str(k.chart), "--namespace", ns, "--create-namespace",
               "--set", "replicas=2", "--set", "image.tag=0.1.1", "--wait=false")
        dep = json.loads(k.kubectl("-n", ns, "get", f"deploy/{release}", "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "raftkv:0.1.1"
        peering = json.loads(k.kubectl("get", "clusterkopfpeering", "raftkv-operator",
                                       "-o", "json").stdout)
        assert peering["metadata"]["name"] == "raftkv-operator"
        status = k.helm("status", release, "--namespace", ns, "-o", "json").stdout
        assert json.loads(status)["info"]["status"] == "deployed"
    finally:
        k.helm("uninstall", release, "--namespace", ns, check=False)
        k.kubectl("delete", "namespace", ns, "--wait=false", check=False)
