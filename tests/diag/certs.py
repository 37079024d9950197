"""The certificates diag's TLS tests need, issued with :mod:`tests.support.pki` (openssl CLI).

One CA signs a server certificate for 127.0.0.1/localhost and a client certificate, a
second CA ("other") signs nothing the server trusts, and two certificates expired in 2020
(a server one and a client one) are signed by the first CA, and so is a peer certificate.

Invariant: files are written under the given directory only; the server certificate's
subjectAltName is exactly DNS:localhost and IP:127.0.0.1, so dialing 127.0.0.2 (also
loopback) is a hostname mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.pki import issue, make_ca


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing the server trusts
    other_client: Pair  # a client certificate from the other CA
    expired_client: Pair
    expired_server: Pair
    peer: Pair  # serverAuth and clientAuth, for mTLS between members

    def client_args(self, ca: Path | None = None, client: Pair | None = None) -> list[str]:
        """diag/etcdctl's --cacert/--cert/--key (the good ones unless told otherwise)."""
        c = client or Pair(self.client_cert, self.client_key)
        return ["--cacert", str(ca or self.ca), "--cert", str(c.cert), "--key", str(c.key)]

    def server_args(self, server: Pair | None = None) -> list[str]:
        """etcd's flags for mutual TLS on client (and metrics) and peer ports, as kubeadm's."""
        s = server or Pair(self.server_cert, self.server_key)
        return [f"--cert-file={s.cert}", f"--key-file={s.key}",
                f"--trusted-ca-file={self.ca}", "--client-cert-auth",
                f"--peer-cert-file={self.peer.cert}", f"--peer-key-file={self.peer.key}",
                f"--peer-trusted-ca-file={self.ca}", "--peer-client-cert-auth"]


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    make_ca(d, "ca", "diag-test-ca")
    make_ca(d, "other-ca", "diag-other-ca")
    issue(d, "ca", "server", "/CN=etcd-server", usage="server")
    issue(d, "ca", "client", "/CN=diag", usage="client")
    issue(d, "other-ca", "other-client", "/CN=stranger", usage="client")
    issue(d, "ca", "expired-client", "/CN=diag-old", usage="client", expired=True)
    issue(d, "ca", "expired-server", "/CN=etcd-old", usage="server", expired=True)
    issue(d, "ca", "peer", "/CN=etcd-peer", usage="peer")

    def pair(name: str) -> Pair:
        return Pair(d / f"{name}.crt", d / f"{name}.key")

    return Certs(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt",
                 d / "client.key", d / "other-ca.crt", pair("other-client"),
                 pair("expired-client"), pair("expired-server"), pair("peer"))
