"""The operator end to end in a real kind cluster: scenarios 1-9 of issue 10, and RBAC.

The operator is installed by the Helm chart (charts/raftkv-operator) with 2 replicas
(kopf peering: one acts). The scenarios run in order on one RaftCluster ``demo`` in
namespace ``e2e`` (each starts from the state the previous one left, a healthy 3-member
cluster), except 2 (refused by the API server) and 9 (deletion); 10 runs a second,
one-member cluster ``plain`` with ``tls: Disabled`` so plain text stays covered.

``demo`` runs on the default ``spec.tls`` (Auto): mutual TLS on client and peer ports. All
client traffic runs inside the cluster with the operator-issued ``demo-client-tls`` Secret
mounted at ``/tls``: the writer, the member-list sampler and the verifier are pods on the
raftkv image running ``traffic.py`` (mounted from a ConfigMap); etcdctl and diag run in a
``tools`` pod (``kubectl exec``) and dial https with ``--cacert/--cert/--key``. Every
wait polls a condition (status fields, pod phases, log lines) under a generous bound;
nothing sleeps in place of readiness. Each scenario's duration is written to
bench/results/operator-e2e.md.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest

pytestmark = [pytest.mark.kind, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TRAFFIC = Path(__file__).with_name("traffic.py")
RESULTS = ROOT / "bench" / "results" / "operator-e2e.md"
NS, OP_NS, NAME = "e2e", "raftkv-system", "demo"
CLIENT = f"https://{NAME}.{NS}.svc:2379"
TLS_DIR, TOOLS = "/tls", "tools"
TLS_FLAGS = (f"--cacert={TLS_DIR}/ca.crt", f"--cert={TLS_DIR}/tls.crt",
             f"--key={TLS_DIR}/tls.key")
T = TypeVar("T")
TIMINGS: list[tuple[str, float, str]] = []


def poll(fn: Callable[[], T | bool | None], timeout: float, what: str,
         interval: float = 0.5) -> T:
    """Return fn()'s first truthy value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            v = fn()
            if v:
                return v  # type: ignore[return-value]
        except Exception as exc:  # not up yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


class Timer:
    def __init__(self, name: str) -> None:
        self.name, self.note = name, ""

    def __enter__(self) -> Timer:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        status = "passed" if exc_type is None else "FAILED"
        TIMINGS.append((self.name, time.monotonic() - self.t0, f"{status} {self.note}".strip()))


# --- helpers over the cluster ----------------------------------------------------------


class K:
    """kubectl shortcuts over the kind cluster fixture (commands run in its netns)."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 120) -> Any:
        return self.kc.kubectl(*args, input=input, check=check, timeout=timeout)

    def json(self, *args: str, ns: str = NS) -> Any:
        return json.loads(self("get", "-n", ns, "-o", "json", *args).stdout)

    def apply(self, obj: dict[str, Any]) -> Any:
        return self("apply", "-f", "-", input=json.dumps(obj), check=False)

    def status(self) -> dict[str, Any]:
        return dict(self.json("raftcluster", NAME).get("status") or {})

    def condition(self, ctype: str) -> dict[str, Any]:
        return next((c for c in self.status().get("conditions") or []
                     if c["type"] == ctype), {})

    def exec(self, pod: str, *argv: str, check: bool = True) -> Any:
        return self("exec", "-n", NS, pod, "-c", "raftkv", "--", *argv, check=check)

    def etcdctl(self, *argv: str, endpoints: str = CLIENT, check: bool = True) -> Any:
        """etcdctl in the tools pod, over mTLS with the operator-issued client Secret."""
        return self.exec(TOOLS, "etcdctl", f"--endpoints={endpoints}", *TLS_FLAGS, *argv,
                         check=check)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        items = self.json("events", f"--field-selector=involvedObject.name={NAME}")["items"]
        return [e for e in items if e["involvedObject"].get("kind") == "RaftCluster"
                and (reason is None or e["reason"] == reason)]


def cluster(replicas: int = 3, version: str = "0.1.0", name: str = NAME,
            tls: dict[str, Any] | None = None) -> dict[str, Any]:
    """A RaftCluster; without ``tls`` it gets the CRD's default (Auto)."""
    spec: dict[str, Any] = {"replicas": replicas, "version": version,
                            "storage": {"size": "64Mi"}}
    if tls is not None:
        spec["tls"] = tls
    return {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def tls_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The client Secret as a read-only volume and its mount at TLS_DIR."""
    return ({"name": "tls", "secret": {"secretName": f"{NAME}-client-tls"}},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True})


def tools_pod(image: str) -> dict[str, Any]:
    """A pod on the raftkv image (etcdctl, diag) with the client Secret; it idles until
    deleted (the loop wakes every second to notice SIGTERM)."""
    vol, mount = tls_volume()
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": TOOLS, "namespace": NS, "labels": {"e2e": "tools"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "raftkv", "image": image,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", "trap 'exit 0' TERM; "
                                                 "while :; do sleep 1; done"],
                                     # no GRPC_DNS_RESOLVER here: diag and traffic.py
                                     # choose gRPC's native resolver themselves
                                     "volumeMounts": [mount]}],
                     "volumes": [vol]}}


def healthy(k: K, voters: int, version: str | None = None) -> dict[str, Any] | None:
    """The status when Available with ``voters`` healthy voters and no learner."""
    st = k.status()
    ms = st.get("members") or []
    ok = (k.condition("Available").get("status") == "True"
          and sum(1 for m in ms if m["healthy"] and not m["learner"]) == voters
          and len(ms) == voters and st.get("leader")
          and (version is None or all(m.get("version") == version for m in ms))
          and st.get("phase") == "Running")
    return st if ok else None


def traffic_pod(name: str, mode: str, image: str) -> dict[str, Any]:
    # the interpreter that runs the image's console scripts has raftkv installed
    cmd = (f'py=$(head -1 "$(command -v raftkv)" | cut -c3-); '
           f'exec "$py" -u /scripts/traffic.py {mode} {CLIENT} {TLS_DIR}')
    vol, mount = tls_volume()
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"e2e": "traffic"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "raftkv", "image": image,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", cmd],
                                     "volumeMounts": [{"name": "s", "mountPath": "/scripts"},
                                                      mount]}],
                     "volumes": [{"name": "s", "configMap": {"name": "traffic"}}, vol]}}


class Sample(NamedTuple):
    """One ``SAMPLE`` line of traffic.py's sampler."""

    at: float  # unix time
    voters: int
    healthy: int
    stall_ms: float  # how late the sampler's own loop ran meanwhile
    detail: str  # <member id>=<state>,...

    @property
    def measured(self) -> bool:
        """False when the sampler was starved past half its 1 s deadline: then every
        member may time out for the sampler's sake, and the sample says nothing of quorum."""
        return self.stall_ms < 500

    @property
    def below_quorum(self) -> bool:
        return self.healthy < self.voters // 2 + 1


class Traffic:
    """A writer and a sampler pod for the duration of a scenario."""

    def __init__(self, k: K, image: str, sampler: bool = True) -> None:
        self.k, self.image, self.pods = k, image, ["writer"] + (["sampler"] if sampler else [])

    def __enter__(self) -> Traffic:
        for p in self.pods:
            self.k("delete", "-n", NS, "pod", p, "--ignore-not-found", "--wait=true")
            self.k.apply(traffic_pod(p, p, self.image))
        for p in self.pods:
            poll(lambda p=p: self.k.json("pod", p)["status"].get("phase") == "Running", 120,
                 f"traffic pod {p} running")
        poll(lambda: len(self.acked()) >= 5, 120, "the writer's first acknowledged writes")
        return self

    def log(self, pod: str) -> list[str]:
        return str(self.k("logs", "-n", NS, pod).stdout).splitlines()

    def acked(self) -> list[int]:
        return [int(line.split()[1]) for line in self.log("writer") if line.startswith("ACK ")]

    def acks_near(self, when: float, within: float) -> list[int]:
        """The writes acknowledged within ``within`` seconds of unix time ``when``."""
        return [int(n) for line in self.log("writer") if line.startswith("ACK ")
                for n, t in [line.split()[1:3]] if abs(float(t) - when) <= within]

    def samples(self) -> list[Sample]:
        return [Sample(float(f[1]), int(f[2]), int(f[3]), float(f[4]), f[5] if len(f) > 5 else "")
                for line in self.log("sampler") if line.startswith("SAMPLE ")
                for f in [line.split()]]

    def missing_reads(self) -> list[str]:
        return [line for line in self.log("writer") if line.endswith("MISSING")]

    def __exit__(self, *exc: object) -> None:
        for p in self.pods:
            self.k("delete", "-n", NS, "pod", p, "--ignore-not-found", "--wait=false",
                   check=False)

    def verify_no_loss(self) -> int:
        """Read back every acknowledged write (from inside the writer pod)."""
        acked = self.acked()
        cmd = (f'py=$(head -1 "$(command -v raftkv)" | cut -c3-); '
               f'exec "$py" -u /scripts/traffic.py verify {CLIENT} {TLS_DIR}')
        r = self.k("exec", "-i", "-n", NS, "writer", "--", "sh", "-c", cmd,
                   input=" ".join(map(str, acked)) + "\n", timeout=300)
        lost = [line for line in str(r.stdout).splitlines() if line.startswith("LOST")]
        assert not lost, f"acknowledged writes lost: {lost[:10]}"
        assert f"VERIFIED {len(acked)}" in r.stdout, r.stdout[-2000:]
        return len(acked)


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def k(kind_cluster: Any) -> Iterator[K]:
    kk = K(kind_cluster)
    t0 = time.monotonic()
    image = kind_cluster.images["0.1.0"]
    repo, _, tag = image.rpartition(":")
    kind_cluster.helm("install", "raftkv-operator", str(kind_cluster.chart),
                      "--namespace", OP_NS, "--create-namespace", "--wait", "--timeout", "5m",
                      "--set", "replicas=2", "--set", f"image.repository={repo}",
                      "--set", f"image.tag={tag}")
    kk("create", "namespace", NS, check=False)
    kk("create", "configmap", "traffic", "-n", NS, f"--from-file=traffic.py={TRAFFIC}",
       check=False)
    TIMINGS.append(("helm install (operator, 2 replicas)", time.monotonic() - t0, "passed"))
    try:
        yield kk
    finally:
        write_results()
        for p in kk.json("pods", ns=OP_NS)["items"]:  # for the record, pass or fail
            n = p["metadata"]["name"]
            log = kk("logs", "-n", OP_NS, n, "--tail=150", check=False)
            print(f"--- operator {n} ---\n{log.stdout}{log.stderr}")
        ev = kk("get", "events", "-n", NS, "--sort-by=.lastTimestamp", check=False)
        print(f"--- events in {NS} ---\n{ev.stdout[-6000:]}")


@pytest.fixture(scope="module")
def image(kind_cluster: Any) -> str:
    return str(kind_cluster.images["0.1.0"])


def write_results() -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Operator end to end in kind (tests/e2e/kind/test_operator.py)", "",
             f"Run at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
             "`make e2e` on this machine (2 cores).", "",
             "| scenario | seconds | result |", "|---|---:|---|"]
    lines += [f"| {n} | {s:.1f} | {r} |" for n, s, r in TIMINGS]
    RESULTS.write_text("\n".join(lines) + "\n")


# --- scenarios -----------------------------------------------------------------------


def test_operator_peering_one_of_two_replicas_acts(k: K) -> None:
    pods = k.json("pods", "-l", "app.kubernetes.io/name=raftkv-operator", ns=OP_NS)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    names = [p["metadata"]["name"] for p in pods]

    def acting() -> list[str] | None:
        logs = {n: k("logs", "-n", OP_NS, n).stdout for n in names}
        out = [n for n, text in logs.items() if last_peering_line(text).startswith("Resuming")]
        return out if len(out) == 1 else None

    def peers() -> dict[str, Any] | None:
        got = json.loads(k("get", "clusterkopfpeering", "raftkv-operator", "-o",
                           "json").stdout).get("status") or {}
        return got if len(got) >= 2 else None

    peering = poll(peers, 120, "both replicas registered in the ClusterKopfPeering")
    assert len({p["priority"] for p in peering.values()}) == len(peering), peering
    # kopf starts paused; a replica resumes when it sees no higher priority and pauses again
    # when a higher one appears: in the end exactly one replica's last word is "Resuming".
    poll(acting, 120, "exactly one operator replica acting")


def last_peering_line(log: str) -> str:
    words = [m.group(1) for m in re.finditer(r"(Resuming operations|Pausing operations)", log)]
    return words[-1] if words else ""


def test_rbac_denies_what_the_operator_must_not_do(k: K) -> None:
    dep = k.json("deployments", ns=OP_NS)["items"][0]
    sa = dep["spec"]["template"]["spec"].get("serviceAccountName", "default")
    who = f"--as=system:serviceaccount:{OP_NS}:{sa}"
    # Secrets by name only (spec.tls): get/create/update, never list, watch or delete
    for verb, res in [("list", "secrets"), ("watch", "secrets"), ("delete", "secrets"),
                      ("create", "deployments"),
                      ("create", "statefulsets"), ("delete", "nodes"), ("patch", "nodes"),
                      ("create", "clusterroles"), ("create", "configmaps")]:
        r = k("auth", "can-i", verb, res, "-A", who, check=False)
        assert r.stdout.strip() == "no", f"operator may {verb} {res}"
    for verb, res in [("create", "pods"), ("delete", "persistentvolumeclaims"),
                      ("patch", "raftclusters.raftkv.dev/status"),
                      ("create", "poddisruptionbudgets.policy"), ("get", "secrets"),
                      ("create", "secrets"), ("update", "secrets")]:
        r = k("auth", "can-i", verb, res, "-A", who, check=False)
        assert r.stdout.strip() == "yes", f"operator may not {verb} {res}"


def test_1_three_members_available_and_status_agrees_with_etcdctl_and_diag(
        k: K, image: str) -> None:
    with Timer("1. apply 3 members (TLS Auto) -> Available") as t:
        t0 = time.monotonic()
        assert k.apply(cluster(3)).returncode == 0
        st = poll(lambda: healthy(k, 3), 120, "3 healthy voters, Available, within 120 s")
        t.note = f"Available after {time.monotonic() - t0:.1f} s"
    table = k("get", "rkv", "-n", NS).stdout
    assert re.search(rf"{NAME}\s+3\s+3\s+{st['leader']}\s+\d+", table), table
    pod = k.json("pod", f"{NAME}-0")["spec"]["containers"][0]
    args = " ".join(pod.get("command", []) + pod.get("args", []))
    assert "--listen-client-urls=https://" in args and "--client-cert-auth=true" in args, args
    k("delete", "-n", NS, "pod", TOOLS, "--ignore-not-found", "--wait=true")
    assert k.apply(tools_pod(image)).returncode == 0
    poll(lambda: k.json("pod", TOOLS)["status"].get("phase") == "Running", 120,
         "the tools pod (client Secret mounted) running")
    # without the client certificate the member refuses (mTLS, not just TLS)
    bare = k.exec(TOOLS, "etcdctl", f"--endpoints={CLIENT}", f"--cacert={TLS_DIR}/ca.crt",
                  "--command-timeout=5s", "endpoint", "status", check=False)
    assert bare.returncode != 0, bare.stdout
    out = k.etcdctl("endpoint", "status", "--cluster", "-w", "json").stdout
    statuses = json.loads(out)
    ids = {f"{s['Status']['header']['member_id']:x}" for s in statuses}
    assert ids == {m["id"] for m in st["members"]}
    lead = {f"{s['Status']['leader']:x}" for s in statuses}
    assert lead == {next(m["id"] for m in st["members"] if m["leader"])}
    # diag reads each member's /metrics from the metrics port (not the gRPC client port)
    names = sorted(m["name"] for m in st["members"])
    eps = ",".join(f"https://{n}.{NAME}-peer.{NS}.svc:2379" for n in names)
    mets = ",".join(f"http://{n}.{NAME}-peer.{NS}.svc:2381" for n in names)
    diag = json.loads(k.exec(TOOLS, "diag", f"--endpoints={eps}", *TLS_FLAGS,
                             f"--metrics-urls={mets}", "-w", "json", "status").stdout)
    leader_id = next(m["id"] for m in st["members"] if m["leader"])
    assert diag["cluster"]["leader"] == leader_id and diag["cluster"]["agree"]
    assert {r["id"] for r in diag["endpoints"]} == ids
    assert st["term"] in diag["cluster"]["terms"]


def test_2_four_replicas_refused_by_apply_and_scale(k: K) -> None:
    with Timer("2. 4 replicas refused (apply, scale)"):
        r = k.apply(cluster(4))
        assert r.returncode != 0 and "replicas must be an odd number" in r.stderr
        r = k("scale", "-n", NS, "rkv", NAME, "--replicas=4", check=False)
        assert r.returncode != 0 and "replicas must be an odd number" in r.stderr
        assert k.json("raftcluster", NAME)["spec"]["replicas"] == 3


def test_3_scale_3_5_3_under_traffic_no_write_lost_quorum_always(k: K, image: str) -> None:
    with Timer("3. scale 3 -> 5 -> 3 under writes") as t, Traffic(k, image) as traffic:
        t0 = time.monotonic()
        k("scale", "-n", NS, "rkv", NAME, "--replicas=5")
        poll(lambda: healthy(k, 5), 600, "5 healthy voters")
        up = time.monotonic() - t0
        k("scale", "-n", NS, "rkv", NAME, "--replicas=3")
        poll(lambda: healthy(k, 3), 600, "back to 3 healthy voters")
        pods = k.json("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]
        poll(lambda: len(k.json("pvc", "-l", f"raftkv.dev/cluster={NAME}")["items"]) == 3,
             120, "claims of the removed members deleted")
        assert len(pods) == 3
        samples = traffic.samples()
        measured = [s for s in samples if s.measured]
        assert len(measured) > 20 and len(measured) >= 0.9 * len(samples), (
            f"{len(samples) - len(measured)} of {len(samples)} samples taken by a starved "
            f"sampler: {[s for s in samples if not s.measured][:5]}")
        below = [s for s in measured if s.below_quorum]
        assert not below, (f"samples below quorum: {below[:5]}; writes acknowledged within "
                           f"2 s of the first: {traffic.acks_near(below[0].at, 2.0)}")
        assert not traffic.missing_reads()
        n = traffic.verify_no_loss()
        t.note = (f"3->5 {up:.0f} s, 5->3 {time.monotonic() - t0 - up:.0f} s; {n} acked "
                  f"writes all present; {len(samples)} samples, min healthy voters "
                  f"{min(s.healthy for s in measured)}")


def test_4_leader_pod_deleted_new_leader_and_it_rejoins(k: K) -> None:
    with Timer("4. leader pod deleted -> new leader, rejoins") as t:
        st = k.status()
        old_leader = st["leader"]
        old_id = next(m["id"] for m in st["members"] if m["name"] == old_leader)
        t0 = time.monotonic()
        k("delete", "-n", NS, "pod", old_leader, "--wait=false")
        poll(lambda: k.status().get("leader") not in ("", old_leader), 120, "a new leader")
        new_leader = time.monotonic() - t0
        st = poll(lambda: healthy(k, 3), 300, "the old leader's pod back and healthy")
        assert next(m["id"] for m in st["members"] if m["name"] == old_leader) == old_id
        t.note = f"new leader after {new_leader:.1f} s, rejoined as itself"


def test_5_member_0_pod_and_pvc_deleted_healed_by_a_fresh_member(k: K) -> None:
    with Timer("5. member 0 pod + PVC deleted -> healed") as t:
        st = k.status()
        name0 = f"{NAME}-0"
        old_id = next(m["id"] for m in st["members"] if m["name"] == name0)
        if st["leader"] == name0:  # the planner never removes the leader: move it first
            other = next(m["id"] for m in st["members"] if m["name"] != name0)
            k.etcdctl("move-leader", other,
                      endpoints=f"https://{name0}.{NAME}-peer.{NS}.svc:2379")
        k("delete", "-n", NS, "pvc", name0, "--wait=false")
        k("delete", "-n", NS, "pod", name0, "--wait=true", timeout=180)

        def healed() -> dict[str, Any] | None:
            s = healthy(k, 3)
            m0 = next((m for m in (s or {}).get("members", []) if m["name"] == name0), None)
            return s if m0 and m0["id"] != old_id else None

        poll(healed, 600, "demo-0 replaced by a fresh member (new id), 3 healthy voters")
        reasons = {e["reason"] for e in k.events()}
        assert {"RemoveMember", "AddLearner", "CreatePod", "PromoteLearner"} <= reasons
        t.note = f"old id {old_id} removed, fresh learner promoted"


def test_6_rolling_upgrade_followers_first_leader_last(k: K, image: str) -> None:
    with Timer("6. rolling upgrade 0.1.0 -> 0.1.1") as t, Traffic(k, image, sampler=False) \
            as traffic:
        st = k.status()
        leader = st["leader"]
        before = len(traffic.acked())
        k("patch", "-n", NS, "rkv", NAME, "--type=merge", "-p",
          json.dumps({"spec": {"version": "0.1.1"}}))
        order: list[str] = []
        leaders_at_roll: list[str] = []
        deadline = time.monotonic() + 600
        while not healthy(k, 3, version="0.1.1"):
            assert time.monotonic() < deadline, f"upgrade incomplete, order so far {order}"
            s = k.status()
            for m in s.get("members") or []:
                if m.get("image", "").endswith(":0.1.1") and m["name"] not in order:
                    order.append(m["name"])
                    leaders_at_roll.append(s.get("leader", ""))
            time.sleep(0.5)  # sampling interval of the status, not a readiness wait
        assert len(order) == 3 and order[-1] == leader, f"order {order}, leader {leader}"
        assert all(lr != name for lr, name in zip(leaders_at_roll, order, strict=True)), (
            "a member was restarted while it led")
        poll(lambda: len(traffic.acked()) > before + 20, 120, "writes continuing")
        traffic.verify_no_loss()
        t.note = f"order {', '.join(order)} (leader was {leader})"


def signal_member(k: K, pod: str, sig: str) -> None:
    """Send ``sig`` to member ``pod``'s raftkv process from its kind node (an ancestor PID
    namespace, so SIGSTOP reaches the container's init, which it could not from inside)."""
    node = k.json("pod", pod)["spec"]["nodeName"]
    pattern = f"--name={pod[:-1]}[{pod[-1]}] "  # a regex that does not match this script
    script = (f"for d in /proc/[0-9]*; do if tr '\\0' ' ' < $d/cmdline 2>/dev/null | "
              f"grep -q -- '{pattern}'; then kill -{sig} ${{d#/proc/}}; fi; done")
    k.kc.run(["docker", "exec", node, "sh", "-c", script])


def test_7_unsafe_step_refused_with_condition_and_event_until_safe(k: K) -> None:
    with Timer("7. quorum lost: scale-up refused until members are back") as t:
        st = k.status()
        followers = [m["name"] for m in st["members"] if not m["leader"]]
        for f in followers:  # frozen: they neither answer nor vote; quorum is lost
            signal_member(k, f, "STOP")
        t0 = time.monotonic()
        k("scale", "-n", NS, "rkv", NAME, "--replicas=5")
        deg = poll(lambda: (c := k.condition("Degraded")).get("reason") == "Blocked"
                   and "Quorum lost" in c.get("message", "") and c, 90,
                   "Degraded=Blocked with the quorum-loss reason")
        n_pods = len(k.json("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"])
        assert deg["status"] == "True" and "Quorum lost" in deg["message"], deg
        assert k.condition("Available").get("status") == "False"
        assert n_pods == 3, "a step was taken without quorum"
        warn = poll(lambda: [e for e in k.events("Blocked") if e["type"] == "Warning"
                             and "Quorum lost" in e["message"]], 60, "a Warning Event")
        assert warn
        refused_after = time.monotonic() - t0
        for f in followers:  # (their liveness probe may have restarted them already)
            signal_member(k, f, "CONT")
        poll(lambda: healthy(k, 5), 600, "scale-up to 5 done once quorum is back")
        k("scale", "-n", NS, "rkv", NAME, "--replicas=3")
        poll(lambda: healthy(k, 3), 600, "back to 3")
        t.note = f"refused (Blocked, Warning Event) {refused_after:.0f} s after the scale"


def test_8_operator_killed_right_after_member_add_resumes(k: K) -> None:
    with Timer("8. operator killed after MemberAdd -> resumes") as t:
        leader = k.status()["leader"]
        pods_before = {p["metadata"]["name"]
                       for p in k.json("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]}
        k("scale", "-n", NS, "rkv", NAME, "--replicas=5")
        # In the leader's pod, poll the member list until a learner is added but not yet
        # started (etcdctl prints it "unstarted"): the moment right after MemberAdd.
        ep = f"https://{leader}.{NAME}-peer.{NS}.svc:2379"
        k.exec(TOOLS, "sh", "-c", f"timeout 120 sh -c 'until etcdctl --endpoints={ep} "
               f"{' '.join(TLS_FLAGS)} member list | grep -q unstarted; do :; done'")
        ops = k.json("pods", "-l", "app.kubernetes.io/name=raftkv-operator", ns=OP_NS)
        k("delete", "-n", OP_NS, "pod", "--grace-period=0", "--force",
          *[p["metadata"]["name"] for p in ops["items"]], check=False)
        pods_at_kill = {p["metadata"]["name"]
                        for p in k.json("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]}
        t0 = time.monotonic()
        poll(lambda: healthy(k, 5), 600, "scale-up finished by the restarted operator")
        before_pod = pods_at_kill == pods_before
        t.note = (f"killed {'before' if before_pod else 'after'} the learner's pod was "
                  f"created; finished {time.monotonic() - t0:.0f} s after the kill")
        k("scale", "-n", NS, "rkv", NAME, "--replicas=3")
        poll(lambda: healthy(k, 3), 600, "back to 3")


def test_9_delete_removes_everything_it_created(k: K) -> None:
    with Timer("9. delete RaftCluster -> everything gone"):
        k("delete", "-n", NS, "rkv", NAME, "--wait=true", timeout=300)
        sel = f"raftkv.dev/cluster={NAME}"
        for kind in ("pods", "pvc", "services", "pdb"):
            poll(lambda kind=kind: not k.json(kind, "-l", sel)["items"], 300,
                 f"{kind} of {NAME} deleted")


def test_10_tls_disabled_cluster_runs_plain_text(k: K) -> None:
    plain = "plain"
    with Timer("10. tls Disabled (1 member) -> plain text, then deleted") as t:
        t0 = time.monotonic()
        assert k.apply(cluster(1, name=plain, tls={"mode": "Disabled"})).returncode == 0

        def available() -> bool:
            st = k.json("raftcluster", plain).get("status") or {}
            return any(c["type"] == "Available" and c["status"] == "True"
                       for c in st.get("conditions") or [])

        poll(available, 180, f"{plain} Available")
        t.note = f"Available after {time.monotonic() - t0:.1f} s"
        pod = k.json("pod", f"{plain}-0")["spec"]["containers"][0]
        args = " ".join(pod.get("command", []) + pod.get("args", []))
        assert "--listen-client-urls=http://" in args and "--cert-file" not in args, args
        assert not k.json("secrets", "-l", f"raftkv.dev/cluster={plain}")["items"]
        ep = f"--endpoints=http://{plain}.{NS}.svc:2379"
        k.exec(TOOLS, "etcdctl", ep, "put", "plain/k", "v")
        got = k.exec(TOOLS, "etcdctl", ep, "get", "plain/k", "--print-value-only").stdout
        assert got.strip() == "v", got
        k("delete", "-n", NS, "rkv", plain, "--wait=true", timeout=300)
        poll(lambda: not k.json("pods", "-l", f"raftkv.dev/cluster={plain}")["items"], 300,
             f"pods of {plain} deleted")
