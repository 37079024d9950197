"""etcd's auth switched on by a user: the operator, as CN root, still observes and scales.

With TLS on (the default), the operator's client certificate has CN ``root``; with
``--client-cert-auth`` and auth enabled, raftkv (as etcd) takes that CN as the user. The
scenario (kube-apiserver, member pods as local processes, etcdctl 3.6.16):

1. a one-member cluster on the default TLS; with the operator's client certificate
   etcdctl adds the users ``root`` and ``alice`` (no role) and runs ``auth enable``;
   auth is on: alice's write is refused with permission denied;
2. the operator's Status and MemberList calls still answer (the status stays healthy and
   its raft index follows new writes) and scaling 1 -> 3 -> 1 still works (MemberAdd,
   MemberPromote, MemberRemove are root-only);
3. afterwards auth is still on (alice still refused).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from raftkv.client.tls import TLSConfig
from tests.support.etcd import etcd_bin
from tests.support.k8s import ControlPlane
from tests.support.operatorenv import OperatorEnv
from tests.support.proc import wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NS, NAME = "authops", "au"


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[OperatorEnv]:
    try:
        etcd_bin("etcdctl", "3.6")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    e = OperatorEnv(control_plane, tmp_path_factory.mktemp("authops"), NS,
                    "127.93.{ordinal}.1")
    try:
        yield e.start()
    finally:
        e.stop()
        print(e.logs())


def etcdctl(env: OperatorEnv, tls: TLSConfig, *args: str, ordinal: int = 0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    assert tls.cacert and tls.cert and tls.key
    r = subprocess.run([str(etcd_bin("etcdctl", "3.6")), f"--endpoints={env.url(ordinal)}",
                        f"--cacert={tls.cacert}", f"--cert={tls.cert}", f"--key={tls.key}",
                        "--command-timeout=10s", *args],
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)}: {r.stderr.strip()}")
    return r


def _healthy(env: OperatorEnv, n: int) -> bool:
    return env.healthy(NAME, n) is not None


def _wait(env: OperatorEnv, fn: object, timeout: float, what: str) -> None:
    try:
        wait_until(fn, timeout, what, interval=0.5)  # type: ignore[arg-type]
    except AssertionError:
        print(env.logs())
        raise


def alice_refused(env: OperatorEnv, tls: TLSConfig) -> str:
    r = etcdctl(env, tls, "--user=alice:alicepw", "put", "auth/a", "1", check=False)
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_1_auth_enabled_by_a_user(env: OperatorEnv) -> None:
    env.apply({"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
               "metadata": {"name": NAME, "namespace": NS},
               "spec": {"replicas": 1, "version": "0.1.0"}})
    _wait(env, lambda: _healthy(env, 1), 120, "one healthy member on TLS")
    tls = env.client_tls(NAME)
    etcdctl(env, tls, "user", "add", "root", "--new-user-password=rootpw")
    etcdctl(env, tls, "user", "add", "alice", "--new-user-password=alicepw")
    etcdctl(env, tls, "auth", "enable")
    assert "permission denied" in alice_refused(env, tls)


def test_2_the_operator_observes_and_scales_as_cn_root(env: OperatorEnv) -> None:
    tls = env.client_tls(NAME)
    before = int(env.status(NAME)["raftIndex"])
    for i in range(5):  # as CN root (the certificate's user), no password
        etcdctl(env, tls, "put", f"auth/root/{i}", "x")
    _wait(env, lambda: int(env.status(NAME)["raftIndex"]) >= before + 5
          and _healthy(env, 1), 60, "the status follows new writes (Status answers)")
    env.kubectl("scale", "rkv", NAME, "--replicas=3")
    _wait(env, lambda: _healthy(env, 3), 240, "scaled to three with auth on")
    reasons = {e["reason"] for e in env.get("events")["items"]}
    assert {"AddLearner", "PromoteLearner"} <= reasons, reasons
    env.kubectl("scale", "rkv", NAME, "--replicas=1")
    _wait(env, lambda: _healthy(env, 1), 240, "scaled back to one with auth on")
    assert "RemoveMember" in {e["reason"] for e in env.get("events")["items"]}


def test_3_auth_is_still_on(env: OperatorEnv) -> None:
    tls = env.client_tls(NAME)
    assert "permission denied" in alice_refused(env, tls)
    assert "true" in etcdctl(env, tls, "auth", "status").stdout.lower()
