"""``spec.tls`` of a RaftCluster: the mode, the leaf lifetimes, and the members' TLS flags.

Modes (the CRD's enum; ``Disabled`` rather than ``off``, which YAML 1.1 reads as false):
- ``Auto`` (the default): the operator keeps a CA and issues every leaf itself, per member
  a server and a peer certificate, and a client certificate it uses; it renews leaves
  ``renewBeforeSeconds`` before they expire;
- ``Secrets``: three Secrets of type ``kubernetes.io/tls`` with ``ca.crt`` (as
  cert-manager writes them), one server and one peer certificate shared by all members
  (they must name ``*.<cluster>-peer.<namespace>.svc``) and the client certificate the
  operator uses; whoever writes them renews them;
- ``Disabled``: plain text everywhere.

Invariants:
- with TLS on, client and peer URLs are https and both ports demand a client certificate
  signed by the cluster's CA (``--client-cert-auth``, ``--peer-client-cert-auth``): members
  always use mutual TLS between each other; the metrics port stays plain http (kubelet's
  probes and Prometheus read it, as kubeadm does with etcd's 2381);
- the flags are etcd's names, pointing into the Secret volumes mounted at
  :data:`SERVER_DIR` and :data:`PEER_DIR` (keys ``tls.crt``, ``tls.key``, ``ca.crt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

TLS_MOUNT = "/etc/raftkv/tls"
SERVER_DIR, PEER_DIR = f"{TLS_MOUNT}/server", f"{TLS_MOUNT}/peer"
DEFAULT_LIFETIME = 90 * 86400
DEFAULT_RENEW_BEFORE = 30 * 86400
CA_LIFETIME = 10 * 365 * 86400


class TLSMode(Enum):
    AUTO = "Auto"
    SECRETS = "Secrets"
    DISABLED = "Disabled"


@dataclass(frozen=True)
class TLSSpec:
    """The parts of ``spec.tls`` the operator acts on (defaults as in the CRD)."""

    mode: TLSMode = TLSMode.AUTO
    lifetime: int = DEFAULT_LIFETIME
    renew_before: int = DEFAULT_RENEW_BEFORE
    server_secret: str = ""
    peer_secret: str = ""
    client_secret: str = ""

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> TLSSpec:
        doc = doc or {}
        mode = TLSMode(doc.get("mode") or TLSMode.AUTO.value)
        auto = doc.get("auto") or {}
        secrets = doc.get("secrets") or {}
        return cls(
            mode=mode,
            lifetime=int(auto.get("leafLifetimeSeconds", DEFAULT_LIFETIME)),
            renew_before=int(auto.get("renewBeforeSeconds", DEFAULT_RENEW_BEFORE)),
            server_secret=str(secrets.get("server", "")),
            peer_secret=str(secrets.get("peer", "")),
            client_secret=str(secrets.get("client", "")),
        )

    @property
    def enabled(self) -> bool:
        return self.mode is not TLSMode.DISABLED

    @property
    def auto(self) -> bool:
        return self.mode is TLSMode.AUTO

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"


def member_tls_args(tls: TLSSpec) -> list[str]:
    """etcd's TLS flags for a member: mutual TLS on the client and the peer port."""
    if not tls.enabled:
        return []
    return [
        f"--cert-file={SERVER_DIR}/tls.crt",
        f"--key-file={SERVER_DIR}/tls.key",
        f"--trusted-ca-file={SERVER_DIR}/ca.crt",
        "--client-cert-auth=true",
        f"--peer-cert-file={PEER_DIR}/tls.crt",
        f"--peer-key-file={PEER_DIR}/tls.key",
        f"--peer-trusted-ca-file={PEER_DIR}/ca.crt",
        "--peer-client-cert-auth=true",
    ]
