"""TLS settings for etcd endpoints: CA bundle, client certificate and key (mutual TLS).

Invariant: a :class:`TLSConfig` either loads its files into grpc channel credentials or
raises ``ValueError`` naming the file that could not be read; a key without a certificate
(or the reverse) is refused up front, as etcdctl does.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TLSConfig:
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("--cert and --key must be given together")

    @property
    def enabled(self) -> bool:
        return any(p is not None for p in (self.cacert, self.cert, self.key))

    @staticmethod
    def _read(path: Path | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from exc

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self._read(self.cacert, "--cacert"),
            private_key=self._read(self.key, "--key"),
            certificate_chain=self._read(self.cert, "--cert"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """For HTTPS requests to /metrics on a TLS client URL."""
        ctx = ssl.create_default_context(cafile=str(self.cacert) if self.cacert else None)
        if self.cert is not None and self.key is not None:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx
