"""Test certificates made with the openssl CLI (the venv has no crypto library of its own).

Shared by every test that needs a PKI: the Kubernetes control plane of
:mod:`tests.support.k8s`, raftkv's TLS tests, the operator's and diag's.

Invariants:
- every key is a fresh P-256 EC key, written mode 0600;
- serial numbers are random (``secrets``), so two runs never issue the same certificate;
- a failing openssl call raises :class:`RuntimeError` with openssl's own message;
- nothing here reads or writes outside the ``pki`` directory it is given.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Usage = Literal["server", "client", "peer"]
LOOPBACK_SANS = ("DNS:localhost", "IP:127.0.0.1")


def openssl(*args: str, cwd: Path) -> None:
    """Run ``openssl args`` in ``cwd``; raise with its stderr when it fails."""
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {out.stderr.strip()}")


def ec_key(path: Path) -> None:
    """A new P-256 private key at ``path`` (PEM, mode 0600)."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(path), cwd=path.parent)
    path.chmod(0o600)


def make_ca(pki: Path, name: str, cn: str, *, days: int = 7) -> None:
    """``name.crt``/``name.key``: a self-signed CA valid for ``days`` (as envtest's tinyca)."""
    ec_key(pki / f"{name}.key")
    openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}",
            "-days", str(days), "-set_serial", f"0x{secrets.token_hex(8)}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out", f"{name}.crt", cwd=pki)


def _extensions(usage: Usage, sans: tuple[str, ...] | None) -> list[str]:
    ext = ["basicConstraints=critical,CA:FALSE",
           "keyUsage=critical,digitalSignature,keyEncipherment"]
    if usage == "server":
        ext.append("extendedKeyUsage=serverAuth")
    elif usage == "client":
        ext.append("extendedKeyUsage=clientAuth")
    else:  # a peer both serves and dials, as etcd's peer certificates do
        ext.append("extendedKeyUsage=serverAuth,clientAuth")
    if sans is None and usage != "client":
        sans = LOOPBACK_SANS
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    return ext


def _sign_expired(pki: Path, ca: str, name: str) -> None:
    """Sign ``name.csr`` with validity in the past: ``openssl x509`` cannot, ``openssl ca`` can."""
    work = pki / f".{name}-ca"
    work.mkdir(exist_ok=True)
    (work / "index.txt").write_text("")
    (work / "serial.txt").write_text(secrets.token_hex(8) + "\n")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca = tca\n[tca]\ndatabase = index.txt\nserial = serial.txt\n"
        "new_certs_dir = .\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
        "[any]\ncommonName = supplied\norganizationName = optional\n"
    )
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", str(pki / f"{ca}.crt"),
            "-keyfile", str(pki / f"{ca}.key"), "-in", str(pki / f"{name}.csr"),
            "-out", str(pki / f"{name}.crt"), "-extfile", str(pki / f"{name}.ext"),
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext",
            cwd=work)


def issue(
    pki: Path, ca: str, name: str, subject: str, *, server: bool = False,
    usage: Usage | None = None, sans: tuple[str, ...] | None = None, days: int = 7,
    expired: bool = False,
) -> None:
    """``name.crt``/``name.key`` signed by CA ``ca``.

    ``usage`` is ``server`` (the default when ``server=True``), ``client`` (the default
    otherwise) or ``peer`` (both); ``sans`` default to localhost and 127.0.0.1 for server
    and peer certificates, none for client ones. ``expired=True`` makes a certificate
    whose validity ended in 2020.
    """
    kind: Usage = usage or ("server" if server else "client")
    ec_key(pki / f"{name}.key")
    openssl("req", "-new", "-key", f"{name}.key", "-subj", subject,
            "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text("\n".join(_extensions(kind, sans)) + "\n")
    if expired:
        _sign_expired(pki, ca, name)
        return
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", f"0x{secrets.token_hex(8)}", "-days", str(days),
            "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki)


@dataclass(frozen=True)
class ClusterPKI:
    """A CA and the certificates a TLS cluster on loopback needs, as kubeadm lays them out
    for etcd: a server (client port) pair, a peer pair, and a client pair for etcdctl.

    ``member_args`` are the flags that turn on mutual TLS on both ports (the same for
    etcd and raftkv); a test that needs a stranger issues more pairs with :func:`issue`.
    """

    dir: Path
    ca: str = "ca"
    server: str = "server"
    peer: str = "peer"
    client: str = "client"

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def member_args(self, peer: str | None = None) -> list[str]:
        p = peer or self.peer
        ca = self.crt(self.ca)
        return [f"--cert-file={self.crt(self.server)}", f"--key-file={self.key(self.server)}",
                f"--trusted-ca-file={ca}", "--client-cert-auth",
                f"--peer-cert-file={self.crt(p)}", f"--peer-key-file={self.key(p)}",
                f"--peer-trusted-ca-file={ca}", "--peer-client-cert-auth"]

    def etcdctl_args(self) -> list[str]:
        return ["--cacert", str(self.crt(self.ca)), "--cert", str(self.crt(self.client)),
                "--key", str(self.key(self.client))]

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.crt(self.ca)))
        ctx.load_cert_chain(str(self.crt(self.client)), str(self.key(self.client)))
        return ctx


def cluster_pki(pki: Path, ca_cn: str = "raftkv-test-ca") -> ClusterPKI:
    """Make a :class:`ClusterPKI` in ``pki`` (created if needed)."""
    pki.mkdir(parents=True, exist_ok=True)
    out = ClusterPKI(pki)
    make_ca(pki, out.ca, ca_cn)
    # serverAuth and clientAuth, as kubeadm's etcd server certificate: a member dials the
    # other members' client ports with it (etcd's gateway and raftkv's forwarding do)
    issue(pki, out.ca, out.server, "/CN=raftkv-server", usage="peer")
    issue(pki, out.ca, out.peer, "/CN=raftkv-peer", usage="peer")
    issue(pki, out.ca, out.client, "/CN=root", usage="client")
    return out
