"""The harness itself: the wrapper module generator, the skip-or-fail rule, the kubeconfig.

The generator is checked on a go.mod of our own making (no network), so a change in how
staging modules are recognised shows up here rather than as a build failure later.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import kopf
import pytest
from kubernetes import client, config

from tests.support.k8s import ControlPlane, k8s_bin_dir, missing_binaries

ROOT = Path(__file__).resolve().parents[2]


def load_wrapper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_wrapper", ROOT / "scripts/k8s_wrapper.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wrapper_pins_exactly_the_staging_modules_and_copies_godebug() -> None:
    wrapper = load_wrapper()
    gomod = {
        "Go": "1.26.0",
        "GoDebug": [{"Key": "default", "Value": "go1.26"}],
        "Replace": [
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {"Old": {"Path": "k8s.io/streaming"},
             "New": {"Path": "./staging/src/k8s.io/streaming"}},
            {"Old": {"Path": "github.com/x/y"}, "New": {"Path": "github.com/x/y",
                                                        "Version": "v1.2.3"}},
        ],
    }
    text = wrapper.render("v1.36.3", gomod)
    assert "go 1.26.0\n" in text
    assert "godebug default=go1.26\n" in text
    assert "require k8s.io/kubernetes v1.36.3\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "\tk8s.io/streaming => k8s.io/streaming v0.36.3\n" in text
    assert "github.com/x/y" not in text
    with pytest.raises(SystemExit):
        wrapper.staging_version("v1.36")


@pytest.mark.parametrize(("require", "outcome", "code"), [("", "skipped", 0), ("1", "error", 1)])
def test_missing_binaries_skip_or_fail(
    tmp_path: Path, require: str, outcome: str, code: int
) -> None:
    env = {**os.environ, "RAFTKV_K8S_CACHE": str(tmp_path / "empty"),
           "RAFTKV_REQUIRE_K8S": require}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/operator/test_crd.py::test_crd_is_established_with_short_name"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert f"1 {outcome}" in out.stdout, out.stdout + out.stderr
    assert out.returncode == code
    assert "kube binaries missing" in out.stdout


@pytest.mark.k8s
def test_kubeconfig_serves_the_kubernetes_client_and_kopf(control_plane: ControlPlane) -> None:
    api = client.CoreV1Api(config.new_client_from_config(str(control_plane.kubeconfig)))
    names = {ns.metadata.name for ns in api.list_namespace().items}
    assert {"default", "kube-system"} <= names
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(control_plane.kubeconfig)
    try:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    finally:
        if old is None:
            del os.environ["KUBECONFIG"]
        else:
            os.environ["KUBECONFIG"] = old
    assert info is not None
    assert info.server == control_plane.url
    assert info.certificate_path == str(control_plane.pki / "admin.crt")


def test_build_script_returns_at_once_on_a_warm_cache() -> None:
    if missing_binaries():
        pytest.skip(f"no built binaries in {k8s_bin_dir()} to find warm")
    out = subprocess.run(["bash", str(ROOT / "scripts/build-k8s.sh")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"build-k8s: cached: {k8s_bin_dir()}" in out.stderr
    assert "building" not in out.stderr


METRICS_TEXT = """\
# HELP apiserver_storage_consistency_checks_total [ALPHA] Counter for status of checks
# TYPE apiserver_storage_consistency_checks_total counter
apiserver_storage_consistency_checks_total{group="",resource="pods",status="success"} 2
apiserver_storage_consistency_checks_total{group="apps",resource="deployments",status="error"} 1
apiserver_storage_consistency_checks_total_other{status="failure"} 9
apiserver_storage_consistency_checks_totalx 4
"""


def test_metric_samples_parsed_by_exact_name() -> None:
    from tests.support.k8s import CONSISTENCY_METRIC, parse_samples

    samples = parse_samples(METRICS_TEXT, CONSISTENCY_METRIC)
    assert samples == [
        ({"group": "", "resource": "pods", "status": "success"}, 2.0),
        ({"group": "apps", "resource": "deployments", "status": "error"}, 1.0),
    ]
