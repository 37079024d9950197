"""A real Kubernetes control plane for tests, started the way controller-runtime's envtest does.

:class:`ControlPlane` runs a store - etcd 3.6.16 (the control group) or raftkv, three
members each, chosen by its one ``store`` parameter - and kube-apiserver on
loopback with self-signed serving certificates (:mod:`tests.support.pki`), a client certificate in
``system:masters`` and service-account keys, and kube-controller-manager beside it (so
garbage collection and namespace deletion work). It writes a kubeconfig that kubectl, the
kubernetes client and kopf use.

Invariants:
- the binaries come from the cache that ``scripts/build-k8s.sh`` fills (same path rule);
  :func:`missing_binaries` says what is absent so a fixture can skip or, with
  ``RAFTKV_REQUIRE_K8S=1``, fail;
- every process is started through :class:`~tests.support.proc.Proc` and stopped by pid in
  :meth:`ControlPlane.stop`, which ``start`` also calls when startup fails;
- readiness is polled (``/readyz`` of the apiserver with the client certificate and the
  serving CA verified, ``/healthz`` of the controller manager), never slept for;
- logs stay in the work directory, and :meth:`ControlPlane.logs` returns their tails;
- kube-apiserver runs with ``KUBE_WATCHCACHE_CONSISTENCY_CHECKER=true`` (a watch cache that
  disagrees with the store panics the apiserver), ``--etcd-compaction-interval=10s`` and
  ``--event-ttl=30s``, and is given every store member in ``--etcd-servers``. Its watch
  cache checks run 5-7.5 min after start (``ConsistencyCheckPeriod`` in k8s.io/apiserver
  ``pkg/storage/cacher/delegator.go``, not configurable); :meth:`ControlPlane.consistency_checks`
  reads their outcome from ``apiserver_storage_consistency_checks_total``.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import pytest

from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster
from tests.support.pki import issue, make_ca, openssl
from tests.support.proc import Proc, free_port, wait_until

K8S_VERSION = os.environ.get("RAFTKV_K8S_VERSION", "v1.36.3")
BINARIES = ("kube-apiserver", "kube-controller-manager")
KUBECTL = Path(sys.executable).parent / "kubectl"
Store = Literal["etcd", "raftkv"]
STORES: tuple[Store, ...] = ("etcd", "raftkv")
COMPACTION_INTERVAL = "10s"
EVENT_TTL = "30s"
PROGRESS_NOTIFY_INTERVAL = "2s"
CONSISTENCY_METRIC = "apiserver_storage_consistency_checks_total"


def k8s_bin_dir() -> Path:
    """Where scripts/build-k8s.sh puts the binaries (keep the two rules in step)."""
    cache = os.environ.get("RAFTKV_K8S_CACHE")
    if cache:
        return Path(cache) / "bin"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "raftkv" / "k8s" / K8S_VERSION / "bin"


def missing_binaries() -> list[str]:
    """Names of the control-plane binaries that are not built yet."""
    bin_dir = k8s_bin_dir()
    missing = [b for b in BINARIES if not (bin_dir / b).is_file()]
    if not KUBECTL.is_file():
        missing.append(f"kubectl (expected at {KUBECTL})")
    try:
        etcd36_bin("etcd")
    except FileNotFoundError:
        missing.append("etcd 3.6.16 (make etcd)")
    return missing


def require_binaries(hint: str) -> None:
    """Skip the calling fixture's tests when a binary is missing (fail with RAFTKV_REQUIRE_K8S=1).

    ``hint`` is the command that builds what is missing.
    """
    missing = missing_binaries()
    if not missing:
        return
    msg = f"kube binaries missing in {k8s_bin_dir()}: {', '.join(missing)}; run `{hint}`"
    if os.environ.get("RAFTKV_REQUIRE_K8S") == "1":
        pytest.fail(f"RAFTKV_REQUIRE_K8S=1 and {msg}", pytrace=False)
    pytest.skip(msg)


# --- metrics -------------------------------------------------------------------------


def parse_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of metric ``name`` in Prometheus text: (labels, value); comments skipped."""
    samples: list[tuple[dict[str, str], float]] = []
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name):]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            body, _, rest = rest[1:].partition("}")
            for part in body.split(","):
                key, sep, val = part.partition("=")
                if sep:
                    labels[key.strip()] = val.strip().strip('"')
        elif not rest.startswith(" "):
            continue  # another metric whose name starts with this one
        fields = rest.split()
        if fields:
            samples.append((labels, float(fields[0])))
    return samples


# --- the control plane ---------------------------------------------------------------


class ControlPlane:
    """A store + kube-apiserver + kube-controller-manager on loopback, with a kubeconfig.

    ``store="etcd"``: three etcd 3.6.16 members; ``store="raftkv"``: three raftkv members
    (the same size, so the same fault - SIGKILL of the leader - can be run on both).
    """

    def __init__(self, workdir: Path, store: Store = "etcd") -> None:
        self.workdir = workdir
        self.store: Store = store
        self.pki = workdir / "pki"
        self.bin_dir = k8s_bin_dir()
        # Progress notifications keep quiet watch caches fresh, so the consistency checker's
        # list at the cache's revision is not refused as compacted by the 10 s compactor.
        progress = f"--watch-progress-notify-interval={PROGRESS_NOTIFY_INTERVAL}"
        if store == "etcd":
            self.etcd = Cluster(workdir / "etcd", size=3, binary=etcd36_bin(),
                                token="k8s-store",
                                extra_args=["--unsafe-no-fsync", progress])
        elif store == "raftkv":
            self.etcd = raftkv_cluster(workdir / "raftkv", 3, token="k8s-store",
                                       extra_args=[progress])
        else:
            raise ValueError(f"unknown store {store!r}; one of {STORES}")
        self.port = free_port()
        self.kcm_port = free_port()
        self.apiserver: Proc | None = None
        self.kcm: Proc | None = None
        self.kubeconfig = workdir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # PKI and kubeconfig

    def _write_pki(self) -> None:
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        make_ca(pki, "serving-ca", "raftkv-test-serving-ca")
        issue(pki, "serving-ca", "apiserver", "/CN=kube-apiserver", server=True)
        make_ca(pki, "client-ca", "raftkv-test-client-ca")
        issue(pki, "client-ca", "admin", "/CN=admin/O=system:masters")
        # The service-account token signer: an RSA pair, public half for verification.
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", "sa.key", cwd=pki)
        (pki / "sa.key").chmod(0o600)
        openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)

    def _write_kubeconfig(self) -> None:
        # Paths, not inline data: kubectl, the kubernetes client and kopf all accept them.
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: raftkv-test
  cluster:
    server: {self.url}
    certificate-authority: {self.pki / "serving-ca.crt"}
users:
- name: admin
  user:
    client-certificate: {self.pki / "admin.crt"}
    client-key: {self.pki / "admin.key"}
contexts:
- name: raftkv-test
  context:
    cluster: raftkv-test
    user: admin
    namespace: default
current-context: raftkv-test
"""
        self.kubeconfig.write_text(text)
        self.kubeconfig.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "serving-ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET a path on the apiserver as the admin user; (status, body)."""
        try:
            with urllib.request.urlopen(
                f"{self.url}{path}", timeout=timeout, context=self.ssl_context()
            ) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    # processes

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={','.join(self.etcd.endpoints)}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--authorization-mode=RBAC",
            f"--client-ca-file={pki / 'client-ca.crt'}",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            # Short enough that compaction and Event expiry happen within a test module.
            f"--etcd-compaction-interval={COMPACTION_INTERVAL}",
            f"--event-ttl={EVENT_TTL}",
        ]

    def _kcm_argv(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.kcm_port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'serving-ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'client-ca.crt'}",
            f"--cluster-signing-key-file={pki / 'client-ca.key'}",
            "--use-service-account-credentials=false",
        ]

    def metrics(self) -> str:
        """The apiserver's /metrics text (Prometheus exposition format)."""
        status, body = self.get("/metrics", timeout=10.0)
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}: {body[:200]}")
        return body

    def metric_samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of metric ``name``: (labels, value)."""
        return parse_samples(self.metrics(), name)

    def consistency_checks(self, resource: str | None = None) -> dict[str, float]:
        """Watch-cache consistency checks so far, of one resource or summed over all:
        status -> count (status is ``success``, ``failure`` or ``error``)."""
        totals: dict[str, float] = {}
        for labels, value in self.metric_samples(CONSISTENCY_METRIC):
            if resource is not None and labels.get("resource") != resource:
                continue
            status = labels.get("status", "")
            totals[status] = totals.get(status, 0.0) + value
        return totals

    def _readyz(self) -> bool:
        status, _ = self.get("/readyz")
        return status == 200

    def _kcm_healthy(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the controller manager's cert is self-made at start
        with urllib.request.urlopen(
            f"https://127.0.0.1:{self.kcm_port}/healthz", timeout=2.0, context=ctx
        ) as resp:
            return bool(resp.status == 200)

    def _check_alive(self, proc: Proc) -> None:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during startup:\n{proc.log_tail()}")

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start everything and wait until it is ready; on any failure stop what started."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_pki()
            self._write_kubeconfig()
            self.etcd.start()
            self.apiserver = Proc("kube-apiserver", self._apiserver_argv(),
                                  self.workdir / "kube-apiserver.log",
                                  env={"KUBE_WATCHCACHE_CONSISTENCY_CHECKER": "true"}).start()
            apiserver = self.apiserver

            def api_ready() -> bool:
                self._check_alive(apiserver)
                return self._readyz()

            wait_until(api_ready, timeout, f"kube-apiserver /readyz at {self.url}", 0.1)
            wait_until(lambda: self.get("/api/v1/namespaces/default")[0] == 200,
                       timeout, "namespace default to exist", 0.1)
            self.kcm = Proc("kube-controller-manager", self._kcm_argv(),
                            self.workdir / "kube-controller-manager.log").start()
            kcm = self.kcm

            def kcm_ready() -> bool:
                self._check_alive(kcm)
                return self._kcm_healthy()

            wait_until(kcm_ready, timeout, "kube-controller-manager /healthz", 0.1)
        except BaseException as exc:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"control plane failed to start: {exc}\n{logs}") from exc
        return self

    def stop(self) -> None:
        """Stop by pid in reverse order of start; safe to call twice or after a failed start."""
        for proc in (self.kcm, self.apiserver):
            if proc is not None:
                proc.stop()
        self.etcd.stop()

    def logs(self, lines: int = 30) -> str:
        parts = [f"(logs in {self.workdir})"]
        for proc in (self.apiserver, self.kcm):
            if proc is not None:
                parts.append(f"--- {proc.name} ---\n{proc.log_tail(lines)}")
        parts.append(self.etcd.logs())
        return "\n".join(parts)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the venv's kubectl against this control plane."""
        return subprocess.run(
            [str(KUBECTL), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, check=check, timeout=timeout,
        )

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
