"""The certificates of one RaftCluster in Auto mode, as Secrets (pure: no Kubernetes calls).

Names (``raftkv.operator.objects.ClusterSpec``): the CA ``<cluster>-ca``, per member
``<member>-server-tls`` and ``<member>-peer-tls``, the operator's ``<cluster>-client-tls``.

Invariants:
- every Secret is of type ``kubernetes.io/tls`` with ``tls.crt``, ``tls.key`` and
  ``ca.crt`` (cert-manager's layout, so Auto and Secrets mount the same way), carries the
  cluster's labels and its ownerReference (deleting the RaftCluster deletes them);
- a member's server and peer certificates name it as every client may reach it: its
  stable DNS name (``<member>.<cluster>-peer.<namespace>.svc`` and the shorter and
  ``cluster.local`` forms), the client Service's names, ``localhost`` and the loopback
  addresses; both are issued together, so one expiry renews both;
- the operator's client certificate has CN ``root``: with etcd's auth on, the CN of a
  client certificate is the user, and the operator changes membership.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from raftkv.operator import pki
from raftkv.operator.objects import ClusterSpec, Obj
from raftkv.operator.pki import KeyPair
from raftkv.operator.tls import CA_LIFETIME

SECRET_TYPE = "kubernetes.io/tls"
CLIENT_CN, CLIENT_ORG = "root", "raftkv-operator"


@dataclass(frozen=True)
class MemberCerts:
    server: KeyPair
    peer: KeyPair

    @property
    def not_after(self) -> int:
        return min(self.server.not_after, self.peer.not_after)


def member_sans(spec: ClusterSpec, ordinal: int) -> list[str]:
    m, peer, ns, svc = spec.member(ordinal), spec.peer_service, spec.namespace, spec.name
    return [
        spec.host(ordinal),
        f"{m}.{peer}.{ns}.svc", f"{m}.{peer}.{ns}.svc.cluster.local", f"{m}.{peer}.{ns}",
        f"{m}.{peer}",
        svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local",
        "localhost", "127.0.0.1", "::1",
    ]


def new_ca(spec: ClusterSpec, now: datetime) -> KeyPair:
    return pki.make_ca(f"raftkv CA of {spec.namespace}/{spec.name}", now,
                       timedelta(seconds=CA_LIFETIME))


def issue_member(spec: ClusterSpec, ca: KeyPair, ordinal: int, now: datetime) -> MemberCerts:
    life, sans = timedelta(seconds=spec.tls.lifetime), member_sans(spec, ordinal)
    name = spec.member(ordinal)
    return MemberCerts(
        server=pki.issue(ca, name, now, life, sans=sans, org=spec.name),
        peer=pki.issue(ca, name, now, life, sans=sans, org=spec.name),
    )


def issue_client(spec: ClusterSpec, ca: KeyPair, now: datetime) -> KeyPair:
    return pki.issue(ca, CLIENT_CN, now, timedelta(seconds=spec.tls.lifetime),
                     server=False, org=CLIENT_ORG)


def due(pair: KeyPair, now: int, renew_before: int) -> bool:
    """Expires within ``renew_before`` seconds of ``now`` (Unix seconds)."""
    return pair.not_after - now <= renew_before


def secret(spec: ClusterSpec, name: str, pair: KeyPair, ca_cert: bytes,
           ordinal: int | None = None) -> Obj:
    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": spec._meta(name, spec.labels(ordinal)),
            "data": {"tls.crt": b64(pair.cert), "tls.key": b64(pair.key),
                     "ca.crt": b64(ca_cert)}}


def ca_secret(spec: ClusterSpec, ca: KeyPair) -> Obj:
    return secret(spec, spec.ca_secret, ca, ca.cert)


def member_secrets(spec: ClusterSpec, ordinal: int, certs: MemberCerts,
                   ca_cert: bytes) -> list[Obj]:
    return [secret(spec, spec.server_secret(ordinal), certs.server, ca_cert, ordinal),
            secret(spec, spec.peer_secret(ordinal), certs.peer, ca_cert, ordinal)]


def pair_of(data: Mapping[str, str] | None) -> tuple[KeyPair, bytes] | None:
    """The key pair and CA certificate of a kubernetes.io/tls Secret's data; None when a
    key is missing or does not decode."""
    if not data:
        return None
    try:
        crt, key, ca = (base64.b64decode(data[k]) for k in ("tls.crt", "tls.key", "ca.crt"))
        pair = KeyPair(crt, key)
        pair.not_after  # noqa: B018  (parses the certificate)
    except (KeyError, ValueError):
        return None
    return pair, ca
