"""kube-apiserver v1.36.3 on each store (etcd 3.6.16, raftkv): what a cluster's users do.

Every scenario drives the real apiserver with kubectl and checks the outcome through the
API (and, for leases and compaction, in the store itself with etcdctl 3.6.16): objects
created and owned by kube-controller-manager, chunked lists that follow continue tokens,
``kubectl get -w`` streams, optimistic-concurrency conflicts and their retries,
finalizers holding a deleted object, Events expiring through their lease, the apiserver's
compactor. The SIGKILL of the store's leader runs first, so the watch cache consistency
checks (5-7.5 min after start, test_zz_consistency.py) cover the state after it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apiserver.conftest import Planes
from tests.e2e.apiserver.kube import (
    KubectlWatch,
    apply_json,
    kget,
    member_status,
    names,
    store_leader,
)
from tests.support.k8s import ControlPlane
from tests.support.proc import wait_until

pytestmark = pytest.mark.k8s


def ns(cp: ControlPlane, name: str) -> str:
    """A fresh namespace for one scenario."""
    out = cp.kubectl("create", "namespace", name)
    assert out.returncode == 0, out.stderr
    return name


def configmap(name: str, namespace: str, data: dict[str, str] | None = None,
              **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, **meta},
            "data": data or {}}


# --- faults first: the later consistency checks must cover the state after them --------


def test_leader_sigkill_under_writes_and_watch(control_plane: ControlPlane, planes: Planes,
                                               tmp_path: Path) -> None:
    """SIGKILL the store's leader while kubectl writes and watches: the apiserver serves
    again on its own, and every ConfigMap whose create returned OK is there afterwards."""
    cp = control_plane
    space = ns(cp, "fault")
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    not_ready: list[float] = []  # times /readyz answered other than 200 (or not at all)

    def readyz_poller() -> None:
        while not stop.is_set():
            try:
                ok = cp.get("/readyz", timeout=1.0)[0] == 200
            except OSError:
                ok = False
            if not ok:
                not_ready.append(time.monotonic())
            stop.wait(0.2)

    def writer() -> None:
        i = 0
        while not stop.is_set():
            name = f"w{i:04d}"
            out = cp.kubectl("create", "configmap", name, "-n", space,
                             f"--from-literal=i={i}", "--request-timeout=20s", timeout=40)
            (acked if out.returncode == 0 else failed).append(name)
            i += 1

    with KubectlWatch(cp, "configmaps", "-n", space, log=tmp_path / "watch.log") as watch:
        threads = [threading.Thread(target=f, daemon=True) for f in (writer, readyz_poller)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(acked) >= 5, 60, "5 acknowledged creates before the kill")
            leader = store_leader(cp)
            before = len(acked)
            killed_at = time.monotonic()
            cp.etcd.kill(leader)  # SIGKILL
            wait_until(lambda: len(acked) >= before + 10, 120,
                       "10 more acknowledged creates after the leader's SIGKILL")
            recovered_s = time.monotonic() - killed_at
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        wait_until(lambda: cp.get("/readyz")[0] == 200, 60, "apiserver /readyz after the kill")
        cp.etcd.restart(leader)
        cp.etcd.wait_healthy(60)
        present = names(cp, "configmaps", "-n", space)
        lost = sorted(set(acked) - present)
        assert not lost, f"acknowledged creates lost after the leader's SIGKILL: {lost}"
        watch.wait_for(lambda w: set(acked) <= w.seen("ADDED"), 60,
                       "an ADDED event for every acknowledged create")
        assert watch.alive(), "kubectl get -w ended"
    assert cp.apiserver is not None and cp.apiserver.alive(), "the apiserver exited"
    planes.checks_at_fault[cp.store] = cp.consistency_checks("configmaps").get("success", 0)
    print(f"[{cp.store}] killed leader {leader.name}; {len(acked)} creates acknowledged, "
          f"{len(failed)} failed; 10 more acknowledged {recovered_s:.1f} s after the kill; "
          f"/readyz not 200 in {len(not_ready)} polls (every 0.2 s), "
          f"{(not_ready[-1] - not_ready[0]) if not_ready else 0:.1f} s first to last")


# --- objects and their controllers ------------------------------------------------------


def test_namespace_configmap_deployment_owned_replicaset_and_pods(
        control_plane: ControlPlane) -> None:
    cp = control_plane
    space = ns(cp, "apps")
    assert space in names(cp, "namespaces")
    apply_json(cp, configmap("settings", space, {"mode": "test"}), verb="create")
    assert kget(cp, "configmap", "settings", "-n", space)["data"] == {"mode": "test"}
    out = cp.kubectl("create", "deployment", "web", "-n", space, "--replicas=2",
                     "--image=registry.invalid/raftkv/none:1")
    assert out.returncode == 0, out.stderr
    deployment_uid = kget(cp, "deployment", "web", "-n", space)["metadata"]["uid"]

    def replicaset() -> dict[str, Any] | None:
        items = kget(cp, "replicasets", "-n", space, "-l", "app=web")["items"]
        return items[0] if items else None

    wait_until(lambda: replicaset() is not None, 60, "the Deployment's ReplicaSet")
    rs = replicaset()
    assert rs is not None
    assert [o["uid"] for o in rs["metadata"]["ownerReferences"]] == [deployment_uid]

    def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kget(cp, "pods", "-n", space, "-l", "app=web")["items"]
        return items

    wait_until(lambda: len(pods()) == 2, 60, "the ReplicaSet's two Pods")
    for pod in pods():
        assert [o["uid"] for o in pod["metadata"]["ownerReferences"]] == [rs["metadata"]["uid"]]


def test_chunked_list_follows_continue_tokens(control_plane: ControlPlane) -> None:
    cp = control_plane
    space = ns(cp, "paged")
    made = {f"cm{i:02d}" for i in range(30)}
    apply_json(cp, {"apiVersion": "v1", "kind": "List",
                    "items": [configmap(n, space, {"n": n}) for n in sorted(made)]})
    out = cp.kubectl("get", "configmaps", "-n", space, "--chunk-size=7", "-o", "name", "-v=6")
    assert out.returncode == 0, out.stderr
    listed = {line.removeprefix("configmap/") for line in out.stdout.split()}
    assert made <= listed  # and kube-root-ca.crt, made by the controller manager
    # -v=6 logs each request: ... "Response" verb="GET" url="https://.../configmaps?limit=7..."
    requests = re.findall(r'verb="GET" url="(https://[^"]+/configmaps\?[^"]+)"', out.stderr)
    with_continue = [r for r in requests if "continue=" in r]
    assert requests and all("limit=7" in r for r in requests), out.stderr[-3000:]
    # 31 objects in pages of 7: five pages, four of them fetched with a continue token.
    assert len(with_continue) >= (len(listed) - 1) // 7, requests


def test_kubectl_watch_sees_add_modify_delete(control_plane: ControlPlane,
                                              tmp_path: Path) -> None:
    cp = control_plane
    space = ns(cp, "watched")
    apply_json(cp, configmap("before", space), verb="create")
    with KubectlWatch(cp, "configmaps", "-n", space, log=tmp_path / "watch.log") as watch:
        watch.wait_for(lambda w: "before" in w.seen("ADDED"), 60, "the initial list")
        apply_json(cp, configmap("seen", space, {"v": "1"}), verb="create")
        watch.wait_for(lambda w: "seen" in w.seen("ADDED"), 30, "ADDED seen")
        cp.kubectl("patch", "configmap", "seen", "-n", space, "--type=merge",
                   "-p", '{"data":{"v":"2"}}', check=True)
        watch.wait_for(lambda w: "seen" in w.seen("MODIFIED"), 30, "MODIFIED seen")
        cp.kubectl("delete", "configmap", "seen", "-n", space, check=True)
        watch.wait_for(lambda w: "seen" in w.seen("DELETED"), 30, "DELETED seen")
        order = [t for t, o in watch.events if o.get("metadata", {}).get("name") == "seen"]
        assert order == ["ADDED", "MODIFIED", "DELETED"], order
        modified = [o for t, o in watch.events
                    if t == "MODIFIED" and o["metadata"]["name"] == "seen"]
        assert modified[0]["data"] == {"v": "2"}


# --- optimistic concurrency -------------------------------------------------------------

CONFLICT = "the object has been modified"


def test_stale_resource_version_conflicts_and_two_writers_retry(
        control_plane: ControlPlane) -> None:
    cp = control_plane
    space = ns(cp, "conflict")
    apply_json(cp, configmap("counter", space, {"n": "0"}), verb="create")
    stale = kget(cp, "configmap", "counter", "-n", space)["metadata"]["resourceVersion"]
    first = cp.kubectl("patch", "configmap", "counter", "-n", space, "--type=merge", "-p",
                       json.dumps({"metadata": {"resourceVersion": stale},
                                   "data": {"touched": "1"}}))  # a change: a new revision
    assert first.returncode == 0, first.stderr
    bump = {"metadata": {"resourceVersion": stale}, "data": {"other": "x"}}
    second = cp.kubectl("patch", "configmap", "counter", "-n", space, "--type=merge",
                        "-p", json.dumps(bump))
    assert second.returncode != 0 and CONFLICT in second.stderr, second.stderr

    per_writer = 5
    conflicts: list[int] = []

    def writer() -> None:
        done = 0
        while done < per_writer:
            obj = kget(cp, "configmap", "counter", "-n", space)
            obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
            out = cp.kubectl("replace", "-f", "-", input=json.dumps(obj))
            if out.returncode == 0:
                done += 1
            elif CONFLICT in out.stderr:
                conflicts.append(1)
            else:
                raise AssertionError(f"replace failed: {out.stderr}")

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    final = kget(cp, "configmap", "counter", "-n", space)["data"]["n"]
    assert final == str(2 * per_writer), f"lost updates: n={final}"
    print(f"[{cp.store}] two writers, {2 * per_writer} increments, {len(conflicts)} conflicts "
          "retried")


# --- deletion ---------------------------------------------------------------------------


def test_finalizer_holds_deleted_object_until_removed(control_plane: ControlPlane,
                                                      tmp_path: Path) -> None:
    cp = control_plane
    space = ns(cp, "final")
    apply_json(cp, configmap("held", space, {"k": "v"}, finalizers=["raftkv.dev/hold"]),
               verb="create")
    with KubectlWatch(cp, "configmaps", "-n", space, log=tmp_path / "watch.log") as watch:
        # The delete must come after the watch's initial list, or it shows up there.
        watch.wait_for(lambda w: "held" in w.seen("ADDED"), 60, "the initial list")
        out = cp.kubectl("delete", "configmap", "held", "-n", space, "--wait=false")
        assert out.returncode == 0, out.stderr
        watch.wait_for(lambda w: "held" in w.seen("MODIFIED"), 30,
                       "the deletionTimestamp update")
        obj = kget(cp, "configmap", "held", "-n", space)
        assert obj["metadata"].get("deletionTimestamp"), obj["metadata"]
        assert "held" not in watch.seen("DELETED")
        cp.kubectl("patch", "configmap", "held", "-n", space, "--type=json",
                   "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=True)
        watch.wait_for(lambda w: "held" in w.seen("DELETED"), 30, "DELETED after the patch")
    assert cp.kubectl("get", "configmap", "held", "-n", space).returncode != 0


# --- leases and compaction, seen in the store too ---------------------------------------


def store_kv(cp: ControlPlane, key: str) -> dict[str, Any] | None:
    """The key's KeyValue as etcdctl 3.6.16 prints it (-w json), or None if absent."""
    out = cp.etcd.etcdctl("get", key, "-w", "json", version="3.6")
    kvs: list[dict[str, Any]] = json.loads(out.stdout).get("kvs") or []
    return kvs[0] if kvs else None


def test_event_expires_through_its_lease(control_plane: ControlPlane, tmp_path: Path) -> None:
    """--event-ttl=30s: the Event is written with a lease, and its expiry is a DELETE."""
    cp = control_plane
    space = ns(cp, "events")
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "short-lived", "namespace": space},
        "involvedObject": {"kind": "ConfigMap", "name": "anything", "namespace": space,
                           "apiVersion": "v1"},
        "reason": "Testing", "message": "expires through its lease", "type": "Normal",
        "source": {"component": "raftkv-tests"},
    }
    with KubectlWatch(cp, "events", "-n", space, log=tmp_path / "watch.log") as watch:
        apply_json(cp, event, verb="create")
        watch.wait_for(lambda w: "short-lived" in w.seen("ADDED"), 30, "the Event ADDED")
        kv = store_kv(cp, f"/registry/events/{space}/short-lived")
        assert kv is not None and int(kv.get("lease", 0)) != 0, kv
        created = time.monotonic()
        watch.wait_for(lambda w: "short-lived" in w.seen("DELETED"), 120,
                       "the Event's DELETE when its lease expires")
        expired_s = time.monotonic() - created
    assert store_kv(cp, f"/registry/events/{space}/short-lived") is None
    assert expired_s > 20, f"deleted after {expired_s:.1f} s: before its 30 s TTL"
    print(f"[{cp.store}] Event deleted {expired_s:.1f} s after it was created (ttl 30 s)")


def test_apiserver_compactor_compacts_the_store(control_plane: ControlPlane) -> None:
    """--etcd-compaction-interval=10s: compact_rev_key advances and old revisions go."""
    cp = control_plane

    def compactions() -> tuple[int, int]:
        kv = store_kv(cp, "compact_rev_key")
        return (0, 0) if kv is None else (int(kv["version"]), int(kv["mod_revision"]))

    first, _ = compactions()
    wait_until(lambda: compactions()[0] >= first + 2, 60, "two more compactions")
    out = cp.etcd.etcdctl("get", "/registry/namespaces/default", "--rev=2", version="3.6",
                          check=False)
    assert out.returncode != 0 and "compacted" in out.stderr, (out.stdout, out.stderr)


# --- consistent reads from the watch cache ----------------------------------------------

NOT_SUPPORTED = "RequestWatchProgress feature is not supported"


def supports_progress_requests(version: str) -> bool:
    """k8s.io/apiserver 1.36's rule (storage/feature/feature_support_checker.go): versions
    below 3.4.31, 3.5.0-3.5.12, and unparseable ones lack a correct RequestProgress."""
    try:
        v = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return False
    return not (v < (3, 4, 31) or (3, 5, 0) <= v < (3, 5, 13))


def test_consistent_reads_from_cache_exactly_when_the_store_version_allows(
        control_plane: ControlPlane) -> None:
    """The apiserver turns on consistent reads from its watch cache (progress requests on
    the watch stream) by the store's Status version; when on, they must be served."""
    cp = control_plane
    st = store_status_of_any(cp)
    expected = supports_progress_requests(st["version"])
    log = cp.workdir.joinpath("kube-apiserver.log").read_text(errors="replace")
    assert (NOT_SUPPORTED not in log) == expected, (st["version"], expected)
    for _ in range(3):
        cp.kubectl("get", "configmaps", "-A", check=True)  # a consistent list (no RV)
    served = sum(v for labels, v in cp.metric_samples(
        "apiserver_watch_cache_consistent_read_total")
        if labels.get("success") == "true" and labels.get("fallback") == "false")
    if expected:
        assert served > 0, "no consistent read was served from the watch cache"
    else:
        assert served == 0, "consistent reads from a cache the apiserver said it would not use"
    print(f"[{cp.store}] Status version {st['version']}: consistent reads from cache "
          f"{'on' if expected else 'off (delegated to the store)'}, {served:.0f} served")


def store_status_of_any(cp: ControlPlane) -> dict[str, Any]:
    for m in cp.etcd.members:
        st = member_status(cp, m)
        if st is not None:
            return st
    raise AssertionError("no store member answered Status")
