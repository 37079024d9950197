"""The RaftCluster CRD on a real kube-apiserver: what the API server accepts and refuses.

Every refusal is checked for our own message, and each refusal has an accepted twin
(3 next to 2 and 4, ``scale --replicas=5`` next to ``--replicas=4``), so a CRD that
refused everything would fail here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.k8s import ControlPlane
from tests.support.proc import wait_until

pytestmark = pytest.mark.k8s

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "raftclusters.raftkv.dev.yaml"
ODD_MESSAGE = "replicas must be an odd number from 1 to 7 (1, 3, 5 or 7)"
TIMEOUT_MESSAGE = "spec.electionTimeoutMs must be at least 5 times spec.heartbeatIntervalMs"


def cluster_yaml(name: str, spec: dict[str, object]) -> str:
    return json.dumps({
        "apiVersion": "raftkv.dev/v1alpha1",
        "kind": "RaftCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    })


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with the CRD installed and established."""
    control_plane.kubectl("apply", "-f", str(CRD), check=True)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/raftclusters.raftkv.dev", check=True,
    )
    # Discovery may lag the Established condition by a moment: poll until kubectl sees it.
    wait_until(lambda: control_plane.kubectl("get", "rkv").returncode == 0, 30,
               "kubectl to discover raftclusters")
    return control_plane


def apply(k8s: ControlPlane, name: str, spec: dict[str, object]) -> tuple[int, str]:
    out = k8s.kubectl("apply", "-f", "-", input=cluster_yaml(name, spec))
    return out.returncode, out.stdout + out.stderr


def get(k8s: ControlPlane, name: str) -> dict[str, object]:
    out = k8s.kubectl("get", "raftcluster", name, "-o", "json", check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_crd_is_established_with_short_name(k8s: ControlPlane) -> None:
    out = k8s.kubectl("api-resources", "--api-group=raftkv.dev", "-o", "wide", check=True)
    row = next(line for line in out.stdout.splitlines() if line.startswith("raftclusters"))
    assert "rkv" in row.split()
    assert "RaftCluster" in row.split()
    assert "true" in row.split()  # namespaced


def test_three_replicas_accepted_and_defaults_filled(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "three", {"replicas": 3})
    assert code == 0, out
    spec = get(k8s, "three")["spec"]
    assert spec == {
        "replicas": 3,
        "heartbeatIntervalMs": 100,
        "electionTimeoutMs": 1000,
        "snapshotCount": 10000,
        "quotaBackendBytes": 2147483648,
        "tls": {"mode": "Auto"},
    }


def test_replicas_default_to_three(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "defaulted", {"version": "0.1.0"})
    assert code == 0, out
    assert get(k8s, "defaulted")["spec"]["replicas"] == 3  # type: ignore[index]


@pytest.mark.parametrize("replicas", [1, 5, 7])
def test_other_odd_counts_accepted(k8s: ControlPlane, replicas: int) -> None:
    code, out = apply(k8s, f"odd-{replicas}", {"replicas": replicas})
    assert code == 0, out


@pytest.mark.parametrize("replicas", [2, 4, 9, 0, -1])
def test_even_or_out_of_range_refused_with_our_message(k8s: ControlPlane, replicas: int) -> None:
    name = f"bad-{replicas}" if replicas >= 0 else f"bad-minus{-replicas}"
    code, out = apply(k8s, name, {"replicas": replicas})
    assert code != 0, f"replicas={replicas} was accepted:\n{out}"
    assert ODD_MESSAGE in out
    assert k8s.kubectl("get", "raftcluster", name).returncode != 0  # nothing was stored


def test_kubectl_scale_to_even_refused_and_odd_allowed(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "scaled", {"replicas": 3})
    assert code == 0, out
    refused = k8s.kubectl("scale", "raftcluster/scaled", "--replicas=4")
    assert refused.returncode != 0, refused.stdout
    assert ODD_MESSAGE in refused.stderr
    assert get(k8s, "scaled")["spec"]["replicas"] == 3  # type: ignore[index]
    allowed = k8s.kubectl("scale", "raftcluster/scaled", "--replicas=5")
    assert allowed.returncode == 0, allowed.stderr
    assert get(k8s, "scaled")["spec"]["replicas"] == 5  # type: ignore[index]


def test_election_timeout_must_be_five_heartbeats(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "slowbeat", {"heartbeatIntervalMs": 200, "electionTimeoutMs": 999})
    assert code != 0
    assert TIMEOUT_MESSAGE in out
    code, out = apply(k8s, "okbeat", {"heartbeatIntervalMs": 200, "electionTimeoutMs": 1000})
    assert code == 0, out


SECRETS_MESSAGE = "spec.tls.secrets names the server, peer and client Secrets when"
AUTO_MESSAGE = "spec.tls.auto applies only when spec.tls.mode is Auto"
RENEW_MESSAGE = "spec.tls.auto.renewBeforeSeconds must be shorter than"
IMMUTABLE_MESSAGE = "spec.tls.mode cannot change on an existing RaftCluster"
NAMES = {"server": "srv", "peer": "peer", "client": "cli"}


@pytest.mark.parametrize(("name", "tls", "message"), [
    ("tls-secrets-unnamed", {"mode": "Secrets"}, SECRETS_MESSAGE),
    ("tls-auto-named", {"mode": "Auto", "secrets": NAMES}, SECRETS_MESSAGE),
    ("tls-off-auto", {"mode": "Disabled", "auto": {}}, AUTO_MESSAGE),
    ("tls-renew-late", {"auto": {"leafLifetimeSeconds": 600, "renewBeforeSeconds": 600}},
     RENEW_MESSAGE),
    ("tls-yaml-off", {"mode": "off"}, "Unsupported value"),
    ("tls-half-named", {"mode": "Secrets", "secrets": {"server": "srv", "peer": "peer"}},
     "spec.tls.secrets.client: Required value"),
])
def test_tls_shape_refused_with_our_message(k8s: ControlPlane, name: str,
                                            tls: dict[str, object], message: str) -> None:
    code, out = apply(k8s, name, {"tls": tls})
    assert code != 0, f"{tls} was accepted:\n{out}"
    assert message in out
    assert k8s.kubectl("get", "raftcluster", name).returncode != 0


@pytest.mark.parametrize(("name", "tls", "stored"), [
    ("tls-secrets", {"mode": "Secrets", "secrets": NAMES}, {"mode": "Secrets", "secrets": NAMES}),
    ("tls-off", {"mode": "Disabled"}, {"mode": "Disabled"}),
    ("tls-short", {"auto": {"leafLifetimeSeconds": 600, "renewBeforeSeconds": 599}},
     {"mode": "Auto", "auto": {"leafLifetimeSeconds": 600, "renewBeforeSeconds": 599}}),
    ("tls-auto-defaults", {"auto": {}},
     {"mode": "Auto", "auto": {"leafLifetimeSeconds": 7776000, "renewBeforeSeconds": 2592000}}),
])
def test_tls_shape_accepted_and_defaulted(k8s: ControlPlane, name: str,
                                          tls: dict[str, object], stored: object) -> None:
    code, out = apply(k8s, name, {"tls": tls})
    assert code == 0, out
    assert get(k8s, name)["spec"]["tls"] == stored  # type: ignore[index]


def test_tls_mode_cannot_change_but_the_rest_can(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "tls-fixed", {"replicas": 3})
    assert code == 0, out
    code, out = apply(k8s, "tls-fixed", {"replicas": 3, "tls": {"mode": "Disabled"}})
    assert code != 0 and IMMUTABLE_MESSAGE in out
    code, out = apply(k8s, "tls-fixed", {"replicas": 5, "tls": {
        "mode": "Auto", "auto": {"leafLifetimeSeconds": 900, "renewBeforeSeconds": 300}}})
    assert code == 0, out
    assert get(k8s, "tls-fixed")["spec"]["tls"]["mode"] == "Auto"  # type: ignore[index]


STATUS = {
    "phase": "Running",
    "observedGeneration": 1,
    "replicas": 3,
    "readyReplicas": 2,
    "voters": 3,
    "learners": 0,
    "leader": "demo-1",
    "term": 7,
    "raftIndex": 1234,
    "selector": "app.kubernetes.io/instance=demo",
    "members": [
        {"name": "demo-0", "id": "8e9e05c52164694d", "leader": False, "learner": False,
         "healthy": True, "raftIndex": 1234},
        {"name": "demo-1", "id": "91bc3c398fb3c146", "leader": True, "learner": False,
         "healthy": True, "raftIndex": 1234},
        {"name": "demo-2", "id": "fd422379fda50e48", "leader": False, "learner": False,
         "healthy": False, "raftIndex": 1100},
    ],
    "conditions": [
        {"type": "Available", "status": "True", "reason": "QuorumHealthy",
         "message": "2 of 3 voters are healthy.", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Degraded", "status": "True", "reason": "MemberUnhealthy",
         "message": "demo-2 is unhealthy.", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "TLS", "status": "True", "reason": "AsSpecified",
         "message": "The members run spec.tls.mode Auto.",
         "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ],
    "tls": {"mode": "Auto", "notAfter": "2026-03-01T00:00:00Z"},
}


def test_status_written_through_subresource_and_printer_columns(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "demo", {"replicas": 3})
    assert code == 0, out
    # A status in a main-resource patch is dropped: status belongs to the subresource.
    k8s.kubectl("patch", "raftcluster", "demo", "--type=merge",
                "-p", json.dumps({"status": {"leader": "nobody"}}), check=True)
    assert "status" not in get(k8s, "demo") or get(k8s, "demo")["status"] == {}
    patched = k8s.kubectl("patch", "raftcluster", "demo", "--subresource=status",
                          "--type=merge", "-p", json.dumps({"status": STATUS}))
    assert patched.returncode == 0, patched.stderr
    assert get(k8s, "demo")["status"] == STATUS

    table = k8s.kubectl("get", "rkv", "demo", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "READY", "LEADER", "TERM", "TLS", "AGE"]
    assert table[1].split()[:6] == ["demo", "3", "2", "demo-1", "7", "Auto"]
    wide = k8s.kubectl("get", "rkv", "demo", "-o", "wide", check=True).stdout.splitlines()
    assert wide[0].split()[5:7] == ["TLS", "CERTS-EXPIRE"], wide
    assert wide[1].split()[5:7] == ["Auto", "2026-03-01T00:00:00Z"], wide

    scale = json.loads(k8s.kubectl(
        "get", "--raw", "/apis/raftkv.dev/v1alpha1/namespaces/default/raftclusters/demo/scale",
        check=True).stdout)
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "app.kubernetes.io/instance=demo"


def test_status_condition_type_is_checked(k8s: ControlPlane) -> None:
    code, out = apply(k8s, "badcond", {"replicas": 1})
    assert code == 0, out
    bad = {"conditions": [{"type": "Happy", "status": "True", "reason": "Fine", "message": "",
                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    patched = k8s.kubectl("patch", "raftcluster", "badcond", "--subresource=status",
                          "--type=merge", "-p", json.dumps({"status": bad}))
    assert patched.returncode != 0
    assert "Unsupported value" in patched.stderr


def test_controller_manager_finishes_namespace_deletion(control_plane: ControlPlane) -> None:
    """Without kube-controller-manager a deleted namespace stays Terminating forever."""
    control_plane.kubectl("create", "namespace", "doomed", check=True)
    control_plane.kubectl("create", "configmap", "x", "-n", "doomed", check=True)
    deleted = control_plane.kubectl("delete", "namespace", "doomed", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stderr
    assert control_plane.kubectl("get", "namespace", "doomed").returncode != 0
