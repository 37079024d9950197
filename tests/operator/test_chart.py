"""The operator's packaging: the Helm chart (charts/raftkv-operator) and the kustomize base.

Checks, with the helm that scripts/build-helm.sh builds and the venv's kubectl:
- the chart's CRD is byte-identical to manifests/crd (the single source), and the chart's
  RBAC rules equal the kustomize base's;
- ``helm lint --strict`` passes; ``helm template`` renders the Deployment the operator
  contract asks for (command, liveness probe, replicas value, non-root);
- values.schema.json refuses bad values (each refusal next to an accepted twin, so a
  schema that refused everything fails too);
- ``kubectl kustomize manifests`` renders the CRD, RBAC and Deployment.
Without helm the helm tests skip, unless RAFTKV_REQUIRE_KIND=1 (then they fail).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.k8s import KUBECTL

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "raftkv-operator"
CRD = REPO / "manifests" / "crd" / "raftclusters.raftkv.dev.yaml"
HELM_VERSION = os.environ.get("RAFTKV_HELM_VERSION", "v3.22.0")


def helm_bin() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "raftkv" / "helm" / HELM_VERSION / "bin" / "helm"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = helm_bin()
    if not path.is_file():
        msg = f"helm not built at {path}; run `make helm` (scripts/build-helm.sh)"
        if os.environ.get("RAFTKV_REQUIRE_KIND") == "1":
            pytest.fail(f"RAFTKV_REQUIRE_KIND=1 and {msg}", pytrace=False)
        pytest.skip(msg)
    home = tmp_path_factory.mktemp("helm")
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(path), *args], capture_output=True, text=True, env=env,
                             timeout=60, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    return run


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def test_chart_crd_is_the_manifest_crd() -> None:
    assert (CHART / "crds" / CRD.name).read_bytes() == CRD.read_bytes(), (
        f"charts/raftkv-operator/crds/{CRD.name} differs from {CRD.relative_to(REPO)}; "
        f"copy it: cp {CRD.relative_to(REPO)} charts/raftkv-operator/crds/")


def test_chart_peering_crds_match_the_kustomize_base() -> None:
    chart = (CHART / "crds" / "kopf-peering.yaml").read_bytes()
    assert (REPO / "manifests" / "operator" / "kopf-peering-crds.yaml").read_bytes() == chart


def test_helm_lint_strict(helm: Any) -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out.stdout


def test_helm_template_renders_the_operator_contract(helm: Any) -> None:
    objs = docs(helm("template", "rel", str(CHART), "--namespace", "ops").stdout)
    (dep,) = by_kind(objs, "Deployment")
    assert dep["metadata"]["namespace"] == "ops"
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["raftkv-operator", "--all-namespaces", "--peering",
                            "raftkv-operator"]
    assert c["image"] == "raftkv:0.1.0"
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert {"name": "health", "containerPort": 8080} in c["ports"] and probe["port"] == "health"
    assert pod["securityContext"]["runAsUser"] == 10001
    (sa,) = by_kind(objs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "ops"}]
    (peering,) = by_kind(objs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "raftkv-operator"

    two = docs(helm("template", "rel", str(CHART), "--set", "replicas=2",
                    "--set", "image.tag=0.1.1").stdout)
    (dep2,) = by_kind(two, "Deployment")
    assert dep2["spec"]["replicas"] == 2
    assert dep2["spec"]["template"]["spec"]["containers"][0]["image"] == "raftkv:0.1.1"


def test_chart_rbac_equals_the_kustomize_base(helm: Any) -> None:
    objs = docs(helm("template", "rel", str(CHART)).stdout)
    (role,) = by_kind(objs, "ClusterRole")
    base = docs((REPO / "manifests" / "operator" / "rbac.yaml").read_text())
    (base_role,) = by_kind(base, "ClusterRole")
    assert role["rules"] == base_role["rules"]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    secrets = {v for g, r, v in granted if (g, r) == ("", "secrets")}
    assert secrets == {"get", "create", "update"}  # by name only: never list or watch
    assert not any(r == "deployments" for _, r, _ in granted)
    assert ("raftkv.dev", "raftclusters/status", "patch") in granted


@pytest.mark.parametrize(("good", "bad", "field"), [
    ("replicas=2", "replicas=0", "replicas"),
    ("replicas=3", "replicas=two", "replicas"),
    ("image.pullPolicy=Never", "image.pullPolicy=Sometimes", "pullPolicy"),
    ("peering=my-peering", "peering=Not_A_Name", "peering"),
    ("rbac.create=false", "rbac.creat=false", "creat"),
])
def test_values_schema_refuses_bad_values(helm: Any, good: str, bad: str, field: str) -> None:
    helm("template", "rel", str(CHART), "--set", good)
    out = helm("template", "rel", str(CHART), "--set", bad, check=False)
    assert out.returncode != 0, f"--set {bad} was accepted"
    assert "schema" in out.stderr and field in out.stderr, out.stderr


def test_kustomize_base_renders() -> None:
    out = subprocess.run([str(KUBECTL), "kustomize", str(REPO / "manifests")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    objs = docs(out.stdout)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["Namespace", "CustomResourceDefinition", "CustomResourceDefinition",
                            "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                            "ClusterRoleBinding", "Deployment"]), kinds
    (dep,) = by_kind(objs, "Deployment")
    assert dep["metadata"]["namespace"] == "raftkv-system"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "raftkv:0.1.0"
    assert c["command"] == ["raftkv-operator", "--all-namespaces", "--standalone"]
    crd_names = {o["metadata"]["name"] for o in by_kind(objs, "CustomResourceDefinition")}
    assert crd_names == {"raftclusters.raftkv.dev", "clusterkopfpeerings.kopf.dev",
                         "kopfpeerings.kopf.dev"}
