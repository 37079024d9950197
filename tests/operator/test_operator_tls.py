"""spec.tls Auto on a real kube-apiserver with real members: mTLS everywhere, renewal under load.

The pods run as local raftkv processes (:class:`~tests.support.podrunner.PodRunner`, with
their Secret volumes written out), the operator as the ``raftkv-operator`` console script.
One RaftCluster with the default ``spec.tls`` (Auto) and minutes-long certificates:

1. it bootstraps to three healthy members: the operator reached them over TLS with its
   own client certificate; every Secret is a kubernetes.io/tls one owned by the cluster;
   a client with the cluster's CA and the client certificate works, one without a client
   certificate and one in plain text are refused;
2. the certificates are renewed before they expire, each member restarted on new ones
   one at a time, while a writer keeps writing: a quorum of voters answers throughout,
   and every acknowledged write is still there;
3. after that cluster is deleted, a cluster in mode Secrets runs on Secrets made
   elsewhere (with the openssl CLI, cert-manager's layout): no CA of the operator's, no
   renewal annotation, and a client with those certificates works;
4. after that, a cluster in mode Disabled runs in plain text, with no Secrets at all.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from raftkv.client import EtcdClient, EtcdError, parse_endpoint
from raftkv.client.tls import TLSConfig
from tests.support import pki
from tests.support.k8s import ControlPlane
from tests.support.operatorenv import OperatorEnv
from tests.support.proc import wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NS, NAME = "tlsops", "sec"
LIFETIME, RENEW_BEFORE = 240, 150  # due 90 s after issue
ANNOTATION = "raftkv.dev/certs-not-after"


class Env(OperatorEnv):
    def __init__(self, k8s: ControlPlane, workdir: Path) -> None:
        super().__init__(k8s, workdir, NS, "127.91.{ordinal}.1")

    def status(self, name: str = NAME) -> dict[str, Any]:
        return super().status(name)

    def healthy(self, name: str = NAME, replicas: int = 3) -> dict[str, Any] | None:
        return super().healthy(name, replicas)

    def client_tls(self, cluster: str = NAME) -> TLSConfig:
        return super().client_tls(cluster)

    def not_after(self) -> dict[str, int]:
        pods = self.get("pods", "-l", f"raftkv.dev/cluster={NAME}")["items"]
        return {p["metadata"]["name"]: int(p["metadata"]["annotations"][ANNOTATION])
                for p in pods if not p["metadata"].get("deletionTimestamp")}


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(control_plane, tmp_path_factory.mktemp("tlsops"))
    try:
        e.start()
        yield e
    finally:
        e.stop()
        print(e.logs())


def rfc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _put_get(url: str, tls: TLSConfig | None) -> int:
    c = EtcdClient(parse_endpoint(url), tls=tls, dial_timeout=2, command_timeout=3)
    try:
        await c.put(b"tls/probe", b"1")
        return int((await c.get(b"tls/probe")).count)
    finally:
        await c.close()


def test_1_bootstraps_on_mutual_tls(env: Env) -> None:
    body = {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": 3, "version": "0.1.0", "tls": {"auto": {
                "leafLifetimeSeconds": LIFETIME, "renewBeforeSeconds": RENEW_BEFORE}}}}
    env.k8s.kubectl("apply", "-f", "-", input=json.dumps(body), check=True)
    try:
        wait_until(env.healthy, 150, "three healthy members over TLS", interval=0.5)
    except AssertionError:
        print(env.logs())
        raise
    uid = env.get("raftcluster", NAME)["metadata"]["uid"]
    names = [f"{NAME}-ca", f"{NAME}-client-tls"] + [
        f"{NAME}-{o}-{kind}-tls" for o in range(3) for kind in ("server", "peer")]
    for n in names:
        s = env.get("secret", n)
        assert s["type"] == "kubernetes.io/tls", n
        assert {"tls.crt", "tls.key", "ca.crt"} <= set(s["data"]), n
        assert s["metadata"]["ownerReferences"][0]["uid"] == uid, n
    cmd = env.get("pod", f"{NAME}-1")["spec"]["containers"][0]["command"]
    assert "--client-cert-auth=true" in cmd and "--peer-client-cert-auth=true" in cmd
    assert f"--initial-advertise-peer-urls=https://{env.host_template.format(ordinal=1)}:2380" \
        in cmd
    st = env.status()
    earliest = datetime.fromtimestamp(min(env.not_after().values()), UTC)
    assert st["tls"]["mode"] == "Auto" and st["tls"]["notAfter"] <= rfc(earliest), st["tls"]

    tls = env.client_tls()
    assert run(_put_get(env.url(1), tls)) == 1
    ca_only = TLSConfig(cacert=tls.cacert)
    with pytest.raises(EtcdError):
        run(_put_get(env.url(1), ca_only))
    with pytest.raises(EtcdError):
        run(_put_get(env.url(1, "http"), None))


class Load:
    """A TLS writer and a quorum sampler on their own event loop thread."""

    def __init__(self, env: Env, tls: TLSConfig) -> None:
        self.env, self.tls = env, tls
        self.acked: list[int] = []
        self.healthy: list[int] = []  # per sample: members that answer with a leader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        wait_until(lambda: len(self.acked) >= 5, 30, "first writes", interval=0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _client(self, o: int, dial: float, command: float) -> EtcdClient:
        return EtcdClient(parse_endpoint(self.env.url(o)), tls=self.tls, dial_timeout=dial,
                          command_timeout=command)

    async def _main(self) -> None:
        await asyncio.gather(self._writer(), self._sampler())

    async def _writer(self) -> None:
        n, target = 0, 0
        c = self._client(target, 1, 2)
        while not self._stop.is_set():
            n += 1
            try:
                await c.put(f"w/{n:08d}".encode(), b"x")
                self.acked.append(n)
            except EtcdError:
                await c.close()
                target = (target + 1) % 3
                if n % 20 == 0:  # the operator renews its client certificate too
                    self.tls = self.env.client_tls()
                c = self._client(target, 1, 2)
        await c.close()

    async def _sampler(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            up = 0
            for o in range(3):
                c = self._client(o, 0.5, 1)
                try:
                    up += int((await c.status()).leader != 0)
                except EtcdError:
                    pass
                finally:
                    await c.close()
            self.healthy.append(up)
            await asyncio.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))


def test_2_certificates_renewed_one_member_at_a_time_under_load(env: Env) -> None:
    before = env.not_after()
    assert len(before) == 3
    tls = env.client_tls()
    with Load(env, tls) as load:
        def renewed() -> bool:
            now = env.not_after()
            return len(now) == 3 and all(now[p] > before[p] for p in before)

        try:
            wait_until(renewed, LIFETIME, "every member restarted on renewed certificates",
                       interval=1)
            wait_until(env.healthy, 60, "three healthy members again", interval=0.5)
        except AssertionError:
            print(env.logs())
            raise
    events = env.get("events")["items"]
    renewals = [e["message"] for e in events if e.get("reason") == "RenewCertificates"]
    assert {f"Restart {NAME}-{o} on renewed certificates." for o in range(3)} <= set(renewals)
    # a quorum (2 of 3) answered throughout: at most one member down at a time (a lone
    # sample may miss one member's answer under load, two in a row may not)
    low = [i for i, h in enumerate(load.healthy) if h < 2]
    assert not any(i + 1 in low for i in low), f"quorum lost around samples {low}"
    assert len(load.acked) > 50

    async def missing() -> list[int]:
        c = EtcdClient(parse_endpoint(env.url(0)), tls=env.client_tls(), command_timeout=5)
        try:
            sample = [n for n in load.acked if n % 10 == 0] + load.acked[-5:]
            return [n for n in sample if (await c.get(f"w/{n:08d}".encode())).count != 1]
        finally:
            await c.close()

    assert run(missing()) == []


def delete_cluster(env: Env, name: str) -> None:
    env.k8s.kubectl("-n", NS, "delete", "raftcluster", name, "--wait=false", check=True)
    try:
        wait_until(lambda: env.k8s.kubectl("-n", NS, "get", "raftcluster", name).returncode
                   and not env.get("pods", "-l", f"raftkv.dev/cluster={name}")["items"]
                   and not env.runner.running, 120, f"cluster {name} and its pods gone",
                   interval=0.5)
    except AssertionError:
        print(env.logs(), env.get("raftcluster", name)["metadata"])
        raise


def test_3_secrets_mode_runs_on_secrets_made_elsewhere(env: Env) -> None:
    delete_cluster(env, NAME)
    d = env.workdir / "ext-pki"
    d.mkdir()
    pki.make_ca(d, "ca", "ext test CA")
    sans = ("DNS:localhost", "IP:127.0.0.1",
            *(f"IP:{env.host_template.format(ordinal=o)}" for o in range(3)))
    pki.issue(d, "ca", "server", "/CN=ext", usage="peer", sans=sans)
    pki.issue(d, "ca", "peer", "/CN=ext", usage="peer", sans=sans)
    pki.issue(d, "ca", "client", "/CN=root", usage="client")
    for secret, files in (("ext-server", "server"), ("ext-peer", "peer"),
                          ("ext-client", "client")):
        env.k8s.kubectl("-n", NS, "create", "secret", "generic", secret,
                        "--type=kubernetes.io/tls", f"--from-file=tls.crt={d}/{files}.crt",
                        f"--from-file=tls.key={d}/{files}.key", f"--from-file=ca.crt={d}/ca.crt",
                        check=True)
    body = {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": "ext", "namespace": NS},
            "spec": {"replicas": 3, "version": "0.1.0", "tls": {"mode": "Secrets", "secrets": {
                "server": "ext-server", "peer": "ext-peer", "client": "ext-client"}}}}
    env.k8s.kubectl("apply", "-f", "-", input=json.dumps(body), check=True)
    try:
        wait_until(lambda: env.healthy("ext"), 150, "three healthy members on given Secrets",
                   interval=0.5)
    except AssertionError:
        print(env.logs())
        raise
    pod = env.get("pod", "ext-2")
    vols = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["spec"]["volumes"]}
    assert vols == {"data": None, "server-tls": "ext-server", "peer-tls": "ext-peer"}
    assert ANNOTATION not in (pod["metadata"].get("annotations") or {})
    assert env.k8s.kubectl("-n", NS, "get", "secret", "ext-ca").returncode != 0
    tls = TLSConfig(cacert=d / "ca.crt", cert=d / "client.crt", key=d / "client.key")
    assert run(_put_get(env.url(2), tls)) == 1
    st = env.status("ext")  # notAfter read from the named Secrets (no pod annotation)
    assert st["tls"]["mode"] == "Secrets" and st["tls"].get("notAfter"), st["tls"]


def test_4_disabled_is_plain_text_without_secrets(env: Env) -> None:
    delete_cluster(env, "ext")
    body = {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
            "metadata": {"name": "plain", "namespace": NS},
            "spec": {"replicas": 3, "version": "0.1.0", "tls": {"mode": "Disabled"}}}
    env.k8s.kubectl("apply", "-f", "-", input=json.dumps(body), check=True)
    try:
        wait_until(lambda: env.healthy("plain"), 150, "three healthy plain-text members",
                   interval=0.5)
    except AssertionError:
        print(env.logs())
        raise
    assert run(_put_get(env.url(0, "http"), None)) == 1
    secrets = env.get("secrets", "-l", "raftkv.dev/cluster=plain")["items"]
    assert secrets == []
    cmd = env.get("pod", "plain-0")["spec"]["containers"][0]["command"]
    assert not [a for a in cmd if "cert" in a or "https" in a]
    assert env.status("plain")["tls"] == {"mode": "Disabled"}


def test_5_operator_stopped_leaves_no_key_files(env: Env) -> None:
    made = list(env.tmpdir.glob("raftkv-operator-tls-*"))
    assert made, f"the operator wrote no client TLS directory under {env.tmpdir}"
    assert any(made[0].rglob("tls.key")), \
        f"no key file under {made[0]}: {list(made[0].rglob('*'))}"
    assert env.operator.stop() == 0  # SIGTERM: kopf runs its cleanup handlers
    assert list(env.tmpdir.glob("raftkv-operator-tls-*")) == []
