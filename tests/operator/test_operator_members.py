"""The operator end to end against a real kube-apiserver with real raftkv members.

The control plane has no kubelet, so :class:`~tests.support.podrunner.PodRunner` runs each
member pod's own command line as a local process (each member on its own loopback
address, via ``RAFTKV_MEMBER_HOST_TEMPLATE``). The operator is the ``raftkv-operator``
console script in a subprocess. In order, on one RaftCluster with the default spec.tls
(Auto: every client here dials the members with the operator's client certificate):

1. 3 members bootstrap and the status shows them Available, with leader and term;
2. 3 -> 5 -> 3 under a continuous writer: no acknowledged write lost, and the member
   list sampled every 200 ms never has fewer healthy voters than a quorum;
3. the operator is SIGKILLed right after a MemberAdd (a learner without a pod); the
   restarted operator finishes the scale-up;
4. the leader's pod is deleted: a new leader; the pod comes back as the same member;
5. member 0's pod and claim are deleted: it is replaced by a fresh member (new ID);
6. spec.version changes: members restart followers first, the leader last; the operator
   SIGKILLed in the middle of the next upgrade resumes and finishes it;
7. quorum lost (2 of 3 processes held down): a scale-up is refused with a Degraded=True
   Blocked condition and a Warning Event, no pod is created; released, it proceeds;
8. deleting the RaftCluster deletes its pods, claims, Services and PDB.

The seed of the loopback addresses is printed; each wait polls a condition.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from raftkv.client import EtcdClient, EtcdError, parse_endpoint
from raftkv.client.tls import TLSConfig
from tests.support.k8s import ControlPlane
from tests.support.podrunner import PodRunner
from tests.support.proc import Proc, free_port, wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / "raftclusters.raftkv.dev.yaml"
OPERATOR = Path(sys.executable).parent / "raftkv-operator"
NS, NAME = "members", "demo"
T = TypeVar("T")


# The operator's client certificate (spec.tls Auto, the default), read from its Secret
# once the cluster exists; every client of this file dials the members with it.
CLIENT_TLS: list[TLSConfig] = []


def ec(url: str, dial: float, command: float) -> EtcdClient:
    return EtcdClient(parse_endpoint(url), tls=CLIENT_TLS[0] if CLIENT_TLS else None,
                      dial_timeout=dial, command_timeout=command)


def until(fn: Callable[[], T | bool | None], timeout: float, what: str) -> T:
    return wait_until(fn, timeout, what, interval=0.2)


class Env:
    def __init__(self, k8s: ControlPlane, workdir: Path, seed: int) -> None:
        self.k8s, self.workdir = k8s, workdir
        self.host_template = f"127.{100 + seed % 150}.{{ordinal}}.1"
        self.runner = PodRunner(k8s.kubeconfig, NS, workdir, self.host_template)
        self.operator: Proc | None = None
        self.op_runs = 0

    def client_url(self, ordinal: int) -> str:
        return f"https://{self.host_template.format(ordinal=ordinal)}:2379"

    def load_client_tls(self) -> None:
        data = self.get("secret", f"{NAME}-client-tls")["data"]
        d = self.workdir / "client-tls"
        d.mkdir(exist_ok=True)
        for key in ("ca.crt", "tls.crt", "tls.key"):
            (d / key).write_bytes(base64.b64decode(data[key]))
        CLIENT_TLS[:] = [TLSConfig(cacert=d / "ca.crt", cert=d / "tls.crt", key=d / "tls.key")]

    def start_operator(self) -> None:
        self.op_runs += 1
        self.operator = Proc("raftkv-operator", [
            str(OPERATOR), "--namespace", NS, "--standalone",
            "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        ], self.workdir / f"operator-{self.op_runs}.log", env={
            "KUBECONFIG": str(self.k8s.kubeconfig), "RAFTKV_OPERATOR_INTERVAL": "1",
            "RAFTKV_MEMBER_HOST_TEMPLATE": self.host_template,
            "TMPDIR": str(self.workdir)}).start()  # its TLS key files: killed, it leaves them

    def kubectl(self, *args: str, input: str | None = None) -> Any:
        return self.k8s.kubectl("-n", NS, *args, input=input, check=True)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def status(self) -> dict[str, Any]:
        return dict(self.get("raftcluster", NAME).get("status") or {})

    def condition(self, ctype: str) -> dict[str, Any]:
        return next((c for c in self.status().get("conditions") or []
                     if c["type"] == ctype), {})

    def healthy(self, voters: int, image: str | None = None) -> dict[str, Any] | None:
        st = self.status()
        ms = st.get("members") or []
        ok = (st.get("phase") == "Running" and len(ms) == voters
              and all(m["healthy"] and not m["learner"] for m in ms)
              and (image is None or all(m["image"] == image for m in ms)))
        return st if ok else None

    def patch(self, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "raftcluster", NAME, "--type=merge", "-p",
                     json.dumps({"spec": spec}))

    def logs(self) -> str:
        op = self.operator.log_tail(80) if self.operator else ""
        return f"--- operator ---\n{op}\n{self.runner.logs()}"


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    seed = int(time.time()) % 10_000
    print(f"seed {seed}")
    control_plane.kubectl("apply", "-f", str(CRD), check=True)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/raftclusters.raftkv.dev", check=True)
    control_plane.kubectl("create", "namespace", NS)
    e = Env(control_plane, tmp_path_factory.mktemp("members"), seed)
    e.runner.start()
    e.start_operator()
    try:
        yield e
    finally:
        if e.operator is not None:
            e.operator.stop()
        print(e.logs())
        e.runner.stop()


class Traffic:
    """A writer and a member-list sampler on their own event loop thread."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.acked: list[int] = []
        self.samples: list[tuple[int, int]] = []  # (voters, healthy voters)
        self.missing: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        until(lambda: len(self.acked) >= 5, 30, "first acknowledged writes")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _main(self) -> None:
        await asyncio.gather(self._writer(), self._sampler())

    async def _writer(self) -> None:
        n, target = 0, 0
        c = ec(self.env.client_url(0), 1, 2)
        while not self._stop.is_set():
            n += 1
            try:
                await c.put(f"w/{n:08d}".encode(), b"x")
                self.acked.append(n)
                if n % 10 == 0:
                    got = await c.get(f"w/{n:08d}".encode())
                    if got.count != 1:
                        self.missing.append(n)
            except EtcdError:
                await c.close()
                target = (target + 1) % 7
                c = ec(self.env.client_url(target), 1, 2)
        await c.close()

    async def _sampler(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            for o in range(7):
                c = ec(self.env.client_url(o), 0.3, 0.5)
                try:
                    ml = await c.member_list()
                except EtcdError:
                    continue
                finally:
                    await c.close()
                voters = [m for m in ml.members if not m.is_learner]
                healthy = 0
                for m in voters:
                    mc = ec(m.client_urls[0], 0.3, 0.5) \
                        if m.client_urls else None
                    if mc is None:
                        continue
                    try:
                        s = await mc.status()
                        healthy += int(s.leader != 0 and s.member_id == m.id)
                    except EtcdError:
                        pass
                    finally:
                        await mc.close()
                self.samples.append((len(voters), healthy))
                break
            await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - t0)))

    def verify(self) -> None:
        async def check() -> list[int]:
            for o in range(7):
                c = ec(self.env.client_url(o), 1, 5)
                try:
                    lost = []
                    for n in self.acked:
                        if (await c.get(f"w/{n:08d}".encode())).count != 1:
                            lost.append(n)
                    return lost
                except EtcdError:
                    continue
                finally:
                    await c.close()
            raise AssertionError("no member answered the verification reads")

        lost = asyncio.run(check())
        assert not lost, f"acknowledged writes lost: {lost[:10]}"
        assert not self.missing, f"reads missed acknowledged writes: {self.missing[:10]}"


def test_1_three_members_bootstrap_and_are_available(env: Env) -> None:
    body = {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": 3, "version": "0.1.0"}}  # spec.tls: Auto, the default
    env.kubectl("apply", "-f", "-", input=json.dumps(body))
    t0 = time.monotonic()
    st = until(lambda: env.healthy(3), 180, "3 healthy voters")
    env.load_client_tls()
    print(f"Available after {time.monotonic() - t0:.1f} s")
    assert st["leader"].startswith(f"{NAME}-") and st["term"] >= 1 and st["raftIndex"] > 0
    assert st.get("inProgress") is None and st["readyReplicas"] == 3
    assert env.condition("Available")["status"] == "True"
    assert env.get("pdb", NAME)["spec"]["maxUnavailable"] == 1
    labels = {p["metadata"]["name"]: p["metadata"]["labels"]["raftkv.dev/voter"]
              for p in env.get("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]}
    until(lambda: all(v == "true" for v in labels.values()) or None, 1, "voter labels")
    assert sorted(labels) == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2"]
    reasons = [e["reason"] for e in env.get("events")["items"]
               if e["involvedObject"]["name"] == NAME]
    for r in ("Bootstrap", "AddLearner", "CreatePod", "PromoteLearner"):
        assert r in reasons, f"no {r} event in {reasons}"


def test_2_scale_3_5_3_under_traffic(env: Env) -> None:
    with Traffic(env) as traffic:
        env.patch({"replicas": 5})
        until(lambda: env.healthy(5), 240, "5 healthy voters")
        assert env.get("pdb", NAME)["spec"]["maxUnavailable"] == 2
        env.patch({"replicas": 3})
        until(lambda: env.healthy(3), 240, "back to 3 voters")
        until(lambda: len(env.get("pvc", "-l", f"raftkv.dev/cluster={NAME}")["items"]) == 3,
              60, "claims of removed members deleted")
        n_before = len(traffic.acked)
        until(lambda: len(traffic.acked) > n_before + 10, 30, "writes still succeeding")
    assert len(traffic.samples) > 20, traffic.samples
    below = [s for s in traffic.samples if s[1] < s[0] // 2 + 1]
    assert not below, f"member list below quorum: {below[:5]}"
    traffic.verify()
    print(f"{len(traffic.acked)} writes, {len(traffic.samples)} samples, "
          f"min healthy {min(h for _, h in traffic.samples)}")


def test_3_operator_killed_right_after_member_add_resumes(env: Env) -> None:
    env.patch({"replicas": 5})
    pods_before = {p["metadata"]["name"]
                   for p in env.get("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]}

    async def learner_without_pod() -> bool:
        for o in range(7):
            c = ec(env.client_url(o), 0.3, 0.5)
            try:
                ml = await c.member_list()
                return any(m.is_learner and not m.name for m in ml.members)
            except EtcdError:
                continue
            finally:
                await c.close()
        return False

    wait_until(lambda: asyncio.run(learner_without_pod()), 60, "a learner added, not started",
               interval=0.05)
    assert env.operator is not None
    env.operator.kill()
    pods_now = {p["metadata"]["name"]
                for p in env.get("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]}
    assert pods_now == pods_before, "the pod was created before the kill: the test is moot"
    env.start_operator()
    until(lambda: env.healthy(5), 240, "the restarted operator finishes the scale-up")
    env.patch({"replicas": 3})
    until(lambda: env.healthy(3), 240, "back to 3 voters")


def test_4_leader_pod_deleted_rejoins_as_itself(env: Env) -> None:
    st = env.status()
    leader = st["leader"]
    old = {m["name"]: m["id"] for m in st["members"]}
    env.kubectl("delete", "pod", leader, "--wait=false")
    until(lambda: env.status().get("leader") not in ("", leader), 60, "a new leader")
    st = until(lambda: env.healthy(3), 120, "3 healthy again")
    assert {m["name"]: m["id"] for m in st["members"]} == old


def test_5_member_0_pod_and_claim_deleted_is_replaced(env: Env) -> None:
    st = env.status()
    n0 = f"{NAME}-0"
    old_id = next(m["id"] for m in st["members"] if m["name"] == n0)
    env.kubectl("delete", "pvc", n0, "--wait=false")
    env.kubectl("delete", "pod", n0, "--wait=false")

    def replaced() -> dict[str, Any] | None:
        s = env.healthy(3)
        ids = {m["name"]: m["id"] for m in (s or {}).get("members", [])}
        return s if n0 in ids and ids[n0] != old_id else None

    until(replaced, 240, "demo-0 replaced by a fresh member")


def test_6_rolling_upgrade_followers_first_leader_last(env: Env) -> None:
    st = env.status()
    leader = st["leader"]
    env.patch({"version": "0.1.1"})
    order: list[str] = []
    leaders: list[str] = []
    deadline = time.monotonic() + 300
    while not env.healthy(3, image="raftkv:0.1.1"):
        assert time.monotonic() < deadline, f"upgrade incomplete: {order}"
        s = env.status()
        for m in s.get("members") or []:
            if m["image"] == "raftkv:0.1.1" and m["name"] not in order:
                order.append(m["name"])
                leaders.append(s["leader"])
        time.sleep(0.2)  # the status sampling interval, not a readiness wait
    for m in env.status()["members"]:
        if m["name"] not in order:
            order.append(m["name"])
            leaders.append("?")
    assert order[-1] == leader, f"order {order}, leader was {leader}"
    assert all(lr != n for lr, n in zip(leaders, order, strict=True)), (order, leaders)


def test_6b_operator_killed_mid_upgrade_resumes(env: Env) -> None:
    env.patch({"version": "0.1.2"})
    until(lambda: (env.status().get("inProgress") or {}).get("step") == "RollMember",
          60, "a member being rolled")
    assert env.operator is not None
    env.operator.kill()
    env.start_operator()
    until(lambda: env.healthy(3, image="raftkv:0.1.2"), 300,
          "the restarted operator finishes the upgrade")


def test_7_quorum_lost_refuses_scale_up_until_members_return(env: Env) -> None:
    st = env.status()
    followers = [m["name"] for m in st["members"] if not m["leader"]]
    for f in followers:
        env.runner.hold(f)
    env.patch({"replicas": 5})
    deg = until(lambda: (c := env.condition("Degraded")).get("reason") == "Blocked" and c,
                60, "Degraded=Blocked")
    assert deg["status"] == "True" and "Quorum lost" in deg["message"], deg
    assert env.condition("Available")["status"] == "False"
    until(lambda: [e for e in env.get("events")["items"]
                   if e["involvedObject"]["name"] == NAME and e["type"] == "Warning"
                   and "Quorum lost" in e["message"]], 30, "a Warning Event")
    assert len(env.get("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]) == 3
    for f in followers:
        env.runner.release(f)
    until(lambda: env.healthy(5), 240, "scale-up done once quorum is back")
    env.patch({"replicas": 3})
    until(lambda: env.healthy(3), 240, "back to 3")


def test_8_delete_removes_everything(env: Env) -> None:
    env.kubectl("delete", "raftcluster", NAME, "--wait=true")
    for kind in ("pods", "pvc", "services", "pdb"):
        until(lambda kind=kind: not env.get(kind, "-l", f"raftkv.dev/cluster={NAME}")["items"],
              120, f"{kind} deleted")
