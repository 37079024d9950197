"""The member flags of TLS (issue 13), kept in one place, with etcd's names and meanings.

``add_flags`` adds ``--cert-file --key-file --trusted-ca-file --client-cert-auth
--auto-tls``, their ``--peer-`` twins, ``--peer-cert-allowed-cn``, ``--cipher-suites``
and ``--tls-min-version`` to the ``raftkv`` parser; ``config_values`` turns the parsed
values into ``ServerConfig`` fields (a bad value is a ``ConfigError`` naming the flag).
Booleans take Go's spellings (``--client-cert-auth``, ``--client-cert-auth=true``).
"""

from __future__ import annotations

import argparse
from typing import Any

from raftkv.server.config import ConfigError
from raftkv.server.flagtypes import argtype, go_bool
from raftkv.server.tlsconfig import (
    TLSConfigError,
    TLSInfo,
    TLSSettings,
    parse_cipher_suites,
    parse_min_version,
)


def _side(p: argparse.ArgumentParser, prefix: str, what: str) -> None:
    a = p.add_argument
    a(f"--{prefix}cert-file", default="", help=f"path to the {what} TLS certificate")
    a(f"--{prefix}key-file", default="", help=f"path to the {what} TLS key")
    a(f"--{prefix}trusted-ca-file", default="",
      help=f"CA that signs {what} clients' certificates (set: they must show one)")
    a(f"--{prefix}client-cert-auth", type=argtype(go_bool), nargs="?", const=True,
      default=False, help=f"require {what} clients to show a certificate the CA signed")
    a(f"--{prefix}auto-tls", type=argtype(go_bool), nargs="?", const=True, default=False,
      help=f"{what} TLS with a generated self-signed certificate")


def add_flags(p: argparse.ArgumentParser) -> None:
    _side(p, "", "client")
    _side(p, "peer-", "peer")
    p.add_argument("--peer-cert-allowed-cn", default="",
                   help="the only certificate CN a connecting peer may have")
    p.add_argument("--cipher-suites", default="",
                   help="comma-separated TLS 1.2 cipher suites (Go's names, as etcd)")
    p.add_argument("--tls-min-version", default="TLS1.2", help="TLS1.2 or TLS1.3")


def _info(ns: argparse.Namespace, prefix: str) -> TLSInfo:
    key = prefix.replace("-", "_")
    return TLSInfo(
        prefix=prefix,
        cert_file=getattr(ns, f"{key}cert_file"),
        key_file=getattr(ns, f"{key}key_file"),
        trusted_ca_file=getattr(ns, f"{key}trusted_ca_file"),
        client_cert_auth=bool(getattr(ns, f"{key}client_cert_auth")),
        auto_tls=bool(getattr(ns, f"{key}auto_tls")),
        allowed_cn=ns.peer_cert_allowed_cn if prefix else "",
    )


def config_values(ns: argparse.Namespace) -> dict[str, Any]:
    try:
        settings = TLSSettings(ciphers=parse_cipher_suites(ns.cipher_suites),
                               min_version=parse_min_version(ns.tls_min_version))
    except TLSConfigError as exc:
        raise ConfigError(str(exc)) from None
    return {"client_tls": _info(ns, ""), "peer_tls": _info(ns, "peer-"), "tls": settings}
