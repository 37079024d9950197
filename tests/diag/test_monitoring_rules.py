"""manifests/monitoring: the rules pass ``promtool check rules`` and ``promtool test rules``
(cases that fire and cases that stay quiet), match what ``diag alert-rules`` renders,
and take the job selector as a parameter.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.diag.conftest import run_diag

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "manifests" / "monitoring"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str, cwd: Path = MON) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool not installed; run `make system`")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_rules_check_and_unit_tests() -> None:
    r = promtool("check", "rules", "etcd-alerts.rules.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 8 rules found" in r.stdout
    r = promtool("test", "rules", "etcd-alerts.test.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The promtool tests can fail: a critical fsync level moved to 3s is caught."""
    rules = (MON / "etcd-alerts.rules.yaml").read_text()
    assert "          > 1\n" in rules
    (tmp_path / "etcd-alerts.rules.yaml").write_text(rules.replace("          > 1\n",
                                                                   "          > 3\n"))
    shutil.copy(MON / "etcd-alerts.test.yaml", tmp_path)
    r = promtool("test", "rules", "etcd-alerts.test.yaml", cwd=tmp_path)
    assert r.returncode != 0 and "etcdHighFsyncDurations" in r.stdout + r.stderr


def test_committed_files_are_rendered_by_diag() -> None:
    r = run_diag("alert-rules")
    assert r.code == 0 and r.out == (MON / "etcd-alerts.rules.yaml").read_text()
    r = run_diag("alert-rules", "--kind", "prometheusrule")
    assert r.code == 0 and r.out == (MON / "etcd-alerts.prometheusrule.yaml").read_text()


def test_selector_is_a_parameter(tmp_path: Path) -> None:
    sel = 'job="kube-etcd", namespace="kube-system"'
    r = run_diag("alert-rules", "--selector", sel)
    assert r.code == 0
    assert r.out.count(f"{{{sel}}}") >= 10 and 'job=~".*etcd.*"' not in r.out
    (tmp_path / "custom.yaml").write_text(r.out)
    c = promtool("check", "rules", "custom.yaml", cwd=tmp_path)
    assert c.returncode == 0, c.stdout + c.stderr
    # The PrometheusRule's spec holds the same groups: check them as a rules file.
    pr = (MON / "etcd-alerts.prometheusrule.yaml").read_text()
    assert "kind: PrometheusRule" in pr and "apiVersion: monitoring.coreos.com/v1" in pr
    spec = pr.split("spec:\n", 1)[1]
    groups = "".join(line[2:] if line.startswith("  ") else line
                     for line in spec.splitlines(keepends=True))
    (tmp_path / "from-prometheusrule.yaml").write_text(groups)
    c = promtool("check", "rules", "from-prometheusrule.yaml", cwd=tmp_path)
    assert c.returncode == 0 and "SUCCESS: 8 rules found" in c.stdout, c.stdout + c.stderr
    assert run_diag("alert-rules", "--kind", "yaml").code == 64
