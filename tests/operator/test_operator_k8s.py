"""The operator against a real kube-apiserver (no kubelet: pods stay Pending, no member answers).

The operator runs as a subprocess (``raftkv-operator --namespace NS --standalone``), as a
user would run it locally. What can be proven without a kubelet is proven here:
- a new RaftCluster is bootstrapped with exactly one member pod and its claim, the peer
  and client Services and the voters' PDB, each owned by the RaftCluster, the step is
  recorded in status.inProgress and reported by an Event, and no second step is taken
  while the first member has not started;
- a RaftCluster whose volume claim exists but whose members do not answer is not
  bootstrapped over: the claim's pod is restored, then the operator refuses to go on,
  with a Degraded=True/Blocked condition and a Warning Event naming the pod to look at;
- the liveness endpoint answers; deleting the RaftCluster deletes everything it owns.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.k8s import ControlPlane
from tests.support.proc import Proc, free_port, wait_until

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / "raftclusters.raftkv.dev.yaml"
OPERATOR = Path(sys.executable).parent / "raftkv-operator"
NS = "op-test"


def get(k8s: ControlPlane, *args: str) -> Any:
    out = k8s.kubectl("get", "-n", NS, "-o", "json", *args, check=True)
    return json.loads(out.stdout)


def exists(k8s: ControlPlane, kind: str, name: str) -> bool:
    return k8s.kubectl("get", "-n", NS, kind, name).returncode == 0


def events(k8s: ControlPlane, name: str) -> list[dict[str, Any]]:
    items = get(k8s, "events", f"--field-selector=involvedObject.name={name}")["items"]
    return [e for e in items if e["involvedObject"].get("kind") == "RaftCluster"]


def apply_cluster(k8s: ControlPlane, name: str, replicas: int = 3) -> dict[str, Any]:
    body = {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "version": "0.1.0"}}
    k8s.kubectl("apply", "-f", "-", input=json.dumps(body), check=True)
    return dict(get(k8s, "raftcluster", name))


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "-f", str(CRD), check=True)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/raftclusters.raftkv.dev", check=True)
    control_plane.kubectl("create", "namespace", NS)
    return control_plane


class Operator:
    def __init__(self, k8s: ControlPlane, workdir: Path) -> None:
        self.live_port = free_port()
        self.proc = Proc("raftkv-operator", [
            str(OPERATOR), "--namespace", NS, "--standalone", "--verbose",
            "--liveness", f"http://127.0.0.1:{self.live_port}/healthz",
        ], workdir / "operator.log", env={"KUBECONFIG": str(k8s.kubeconfig),
                                          "RAFTKV_OPERATOR_INTERVAL": "1"})

    def start(self) -> Operator:
        self.proc.start()
        wait_until(self.healthy, 60, "the operator's liveness endpoint")
        return self

    def healthy(self) -> bool:
        assert self.proc.alive(), f"operator exited:\n{self.proc.log_tail()}"
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.live_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False


@pytest.fixture
def operator(k8s: ControlPlane, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(k8s, tmp_path)
    try:
        yield op.start()
    finally:
        op.proc.stop()
        print(f"--- operator log ---\n{op.proc.log_tail(60)}")


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r["uid"] == uid and r.get("controller") for r in refs)


def test_bootstrap_creates_owned_objects_records_the_step_and_waits(
        k8s: ControlPlane, operator: Operator) -> None:
    rc = apply_cluster(k8s, "demo")
    uid = rc["metadata"]["uid"]
    wait_until(lambda: exists(k8s, "pod", "demo-0"), 60, "pod demo-0")
    pod = get(k8s, "pod", "demo-0")
    assert owned_by(pod, uid)
    command = pod["spec"]["containers"][0]["command"]
    assert "--initial-cluster-state=new" in command
    # spec.tls defaults to Auto: https peer URLs, the member's certificates mounted
    assert "--initial-cluster=demo-0=https://demo-0.demo-peer.op-test.svc:2380" in command
    assert "--peer-client-cert-auth=true" in command
    assert {v["name"]: v.get("secret", {}).get("secretName")
            for v in pod["spec"]["volumes"]} == {
        "data": None, "server-tls": "demo-0-server-tls", "peer-tls": "demo-0-peer-tls"}
    for kind, name in [("pvc", "demo-0"), ("service", "demo"), ("service", "demo-peer"),
                       ("pdb", "demo"), ("secret", "demo-ca"), ("secret", "demo-client-tls"),
                       ("secret", "demo-0-server-tls"), ("secret", "demo-0-peer-tls")]:
        wait_until(lambda k=kind, n=name: exists(k8s, k, n), 30, f"{kind} {name}")
        assert owned_by(get(k8s, kind, name), uid), f"{kind} {name} is not owned"
    assert get(k8s, "service", "demo-peer")["spec"]["publishNotReadyAddresses"] is True
    assert get(k8s, "pdb", "demo")["spec"]["maxUnavailable"] == 0  # one voter so far

    def settling() -> dict[str, Any] | None:
        st = get(k8s, "raftcluster", "demo").get("status") or {}
        prog = next((c for c in st.get("conditions") or [] if c["type"] == "Progressing"),
                    None)
        return st if prog and prog["reason"] == "Settling" else None

    st = wait_until(settling, 60, "status Progressing=Settling")
    assert st["inProgress"] == {"step": "Bootstrap", "image": "raftkv:0.1.0"}
    assert st["phase"] == "Bootstrapping" and st["selector"] == "raftkv.dev/cluster=demo"
    reasons = wait_until(
        lambda: {"Bootstrap", "Settling"} <= {e["reason"] for e in events(k8s, "demo")}
        and {e["reason"] for e in events(k8s, "demo")}, 30, "Bootstrap and Settling events")
    assert "Bootstrap" in reasons
    # Settling means no further step: still one pod after more ticks (events are posted
    # after status, so wait for a fresh status write first).
    pods = get(k8s, "pods", "-l", "raftkv.dev/cluster=demo")["items"]
    assert [p["metadata"]["name"] for p in pods] == ["demo-0"]

    k8s.kubectl("delete", "-n", NS, "raftcluster", "demo", "--wait=true", check=True)
    for kind, name in [("pod", "demo-0"), ("pvc", "demo-0"), ("service", "demo"),
                       ("service", "demo-peer"), ("pdb", "demo"), ("secret", "demo-ca"),
                       ("secret", "demo-0-server-tls")]:
        wait_until(lambda k=kind, n=name: not exists(k8s, k, n), 90,
                   f"{kind} {name} garbage-collected")


def test_claims_without_answering_members_are_not_bootstrapped_over(
        k8s: ControlPlane, tmp_path: Path) -> None:
    rc = apply_cluster(k8s, "held")  # no operator yet
    uid = rc["metadata"]["uid"]
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "held-1", "namespace": NS,
                          "labels": {"raftkv.dev/cluster": "held", "raftkv.dev/ordinal": "1"},
                          "ownerReferences": [{"apiVersion": "raftkv.dev/v1alpha1",
                                               "kind": "RaftCluster", "name": "held",
                                               "uid": uid, "controller": True}]},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    k8s.kubectl("apply", "-f", "-", input=json.dumps(claim), check=True)
    op = Operator(k8s, tmp_path)
    try:
        op.start()

        def blocked() -> dict[str, Any] | None:
            st = get(k8s, "raftcluster", "held").get("status") or {}
            deg = next((c for c in st.get("conditions") or [] if c["type"] == "Degraded"),
                       None)
            return deg if deg and deg["status"] == "True" and deg["reason"] == "Blocked" \
                else None

        deg = wait_until(blocked, 60, "Degraded=True/Blocked")
        assert "No member of held answers" in deg["message"]
        assert "`kubectl logs held-1`" in deg["message"]
        warning = wait_until(
            lambda: [e for e in events(k8s, "held")
                     if e["type"] == "Warning" and e["reason"] == "Blocked"],
            30, "a Warning event for the refusal")
        assert "No member of held answers" in warning[0]["message"]
        pod = get(k8s, "pod", "held-1")  # the claim's pod was restored, state existing
        assert "--initial-cluster-state=existing" in pod["spec"]["containers"][0]["command"]
        names = [p["metadata"]["name"]
                 for p in get(k8s, "pods", "-l", "raftkv.dev/cluster=held")["items"]]
        assert names == ["held-1"], f"bootstrapped over existing data: {names}"
    finally:
        op.proc.stop()
        print(f"--- operator log ---\n{op.proc.log_tail(60)}")
        k8s.kubectl("delete", "-n", NS, "raftcluster", "held", "--wait=false")


PEERING_CRDS = ROOT / "charts" / "raftkv-operator" / "crds" / "kopf-peering.yaml"


def last_word(log: str) -> str:
    """"Resuming" or "Pausing": the operator's last peering decision in its log."""
    words = re.findall(r"(Resuming|Pausing) operations", log)
    return words[-1] if words else ""


def test_two_peered_operators_one_acts(k8s: ControlPlane, tmp_path: Path) -> None:
    """Two replicas with the same --peering: only the higher (random) priority acts, and the
    other takes over when it stops."""
    k8s.kubectl("apply", "-f", str(PEERING_CRDS), check=True)
    k8s.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                "crd/kopfpeerings.kopf.dev", check=True)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
               "metadata": {"name": "raftkv-operator", "namespace": NS}}
    k8s.kubectl("apply", "-f", "-", input=json.dumps(peering), check=True)
    ops = []
    for i in range(2):
        port = free_port()
        ops.append(Proc(f"operator-{i}", [
            str(OPERATOR), "--namespace", NS, "--peering", "raftkv-operator", "--verbose",
            "--liveness", f"http://127.0.0.1:{port}/healthz",
        ], tmp_path / f"operator-{i}.log", env={"KUBECONFIG": str(k8s.kubeconfig)}))
    try:
        for op in ops:
            op.start()

        def peers() -> dict[str, Any] | None:
            got = get(k8s, "kopfpeering", "raftkv-operator").get("status") or {}
            return got if len(got) == 2 else None

        status = wait_until(peers, 60, "both operators registered in the KopfPeering")
        assert len({p["priority"] for p in status.values()}) == 2, status  # else both freeze
        # kopf starts paused; a replica resumes when it sees no higher priority and pauses
        # when a higher one appears: in the end one replica's last word is "Resuming".
        def now_acting() -> list[int] | None:
            out = [i for i, op in enumerate(ops)
                   if last_word(op.log_path.read_text(errors="replace")) == "Resuming"]
            return out if len(out) == 1 else None

        acting = wait_until(now_acting, 60, "exactly one operator acting")
        rc = apply_cluster(k8s, "peered", replicas=1)
        wait_until(lambda: exists(k8s, "pod", "peered-0"), 60, "the acting operator bootstraps")
        logs = [op.log_path.read_text(errors="replace") for op in ops]
        assert [i for i, text in enumerate(logs) if "Bootstrap peered" in text] == acting
        ops[acting[0]].stop()  # the standby takes over once the active one is gone
        other = 1 - acting[0]
        wait_until(lambda: last_word(ops[other].log_path.read_text(errors="replace"))
                   == "Resuming", 60, "the standby resuming after the active one stopped")
        k8s.kubectl("delete", "-n", NS, "raftcluster", rc["metadata"]["name"], "--wait=false")
    finally:
        for op in ops:
            op.stop()
            print(f"--- {op.name} ---\n{op.log_tail(30)}")
