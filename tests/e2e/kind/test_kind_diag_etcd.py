"""diag against the kind cluster's own control-plane etcd (3.6.16, kubeadm's mutual TLS).

The pod of ``manifests/diag/control-plane-etcd-diag.yaml`` (the README's instructions) runs
in the node's network with kubeadm's etcd certificates mounted; inside it, diag and the
image's etcdctl 3.6.16 read the same etcd with the same certificates and must agree:
status, health and members; fsync reads kubeadm's http://127.0.0.1:2381 (a bare base URL);
check finds nothing unreachable. The wrong CA and a missing client certificate give their
own exit codes there too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raftkv.diag.exitcodes import ExitCode
from tests.support.kind import KindCluster

pytestmark = [pytest.mark.kind, pytest.mark.slow]

MANIFEST = Path(__file__).resolve().parents[3] / "manifests/diag/control-plane-etcd-diag.yaml"
POD = ("-n", "kube-system")


def _pod_yaml(image: str) -> str:
    text = MANIFEST.read_text()
    assert "image: raftkv:0.1.0" in text and "imagePullPolicy: IfNotPresent" in text
    return (text.replace("image: raftkv:0.1.0", f"image: {image}")
            .replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Never"))


def _exec(k: KindCluster, *argv: str, check: bool = True) -> Any:
    return k.kubectl(*POD, "exec", "etcd-diag", "--", *argv, check=check, timeout=90)


def _json(k: KindCluster, *argv: str) -> Any:
    return json.loads(_exec(k, *argv).stdout)


def test_diag_agrees_with_etcdctl_on_kubeadm_etcd(kind_cluster: KindCluster) -> None:
    k = kind_cluster
    k.kubectl("apply", "-f", "-", input=_pod_yaml(k.images["0.1.0"]))
    try:
        k.kubectl(*POD, "wait", "--for=condition=Ready", "pod/etcd-diag", "--timeout=120s",
                  timeout=150)
        want = _json(k, "etcdctl", "-w", "json", "endpoint", "status")[0]["Status"]
        got = _json(k, "diag", "-w", "json", "status")
        (row,) = got["endpoints"]
        assert row["id"] == f"{want['header']['member_id']:x}"
        assert row["version"] == want["version"] == "3.6.16"
        assert row["leader"] == f"{want['leader']:x}" and row["is_leader"]
        assert row["raft_term"] == want["raftTerm"]
        assert row["wal_fsync_p99_seconds"] is not None  # read from http://127.0.0.1:2381

        health = _json(k, "etcdctl", "-w", "json", "endpoint", "health")
        assert [(h["endpoint"].removeprefix("https://"), h["health"]) for h in health] == [
            (h["endpoint"], h["health"]) for h in _json(k, "diag", "-w", "json", "health")]

        members = _json(k, "etcdctl", "-w", "json", "member", "list")["members"]
        diag_members = _json(k, "diag", "-w", "json", "members")["members"]
        assert sorted((f"{m['ID']:x}", m["name"], tuple(m["clientURLs"])) for m in members) == (
            sorted((m["id"], m["name"], tuple(m["client_urls"])) for m in diag_members))

        (fsync,) = _json(k, "diag", "-w", "json", "fsync", "--lifetime")
        assert fsync["url"] == "http://127.0.0.1:2381/metrics"
        assert fsync["wal_fsync"]["observations"] > 0

        check = _exec(k, "diag", "-w", "json", "check", "--window", "1s", check=False)
        verdict = json.loads(check.stdout)
        assert check.returncode == verdict["exit_code"] <= ExitCode.WARNING, check.stdout
        assert not {f["rule"] for f in verdict["findings"] if f["severity"] != "OK"} & {
            "metrics", "member-unreachable", "unreachable"}, check.stdout

        wrong_ca = _exec(k, "diag", "--cacert", "/etc/kubernetes/pki/etcd/peer.crt", "status",
                         check=False)
        assert wrong_ca.returncode == ExitCode.TLS_UNKNOWN_CA, wrong_ca.stderr
        no_cert = _exec(k, "env", "-u", "DIAG_CERT", "-u", "DIAG_KEY", "diag", "status",
                        check=False)
        assert no_cert.returncode == ExitCode.TLS_CLIENT_CERT_REQUIRED, no_cert.stderr
        assert "--cert and --key" in no_cert.stderr
    finally:
        k.kubectl(*POD, "delete", "pod", "etcd-diag", "--wait=false", check=False)
