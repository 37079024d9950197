"""Parsing etcd endpoint strings the way etcdctl accepts them.

``host:port``, ``http://host:port`` and ``https://host:port`` are accepted; an ``https``
scheme asks for TLS. Invariant: :func:`parse_endpoint` either returns an
:class:`Endpoint` with a port in 1..65535 or raises ``ValueError`` with one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Endpoint:
    """One etcd client endpoint."""

    host: str
    port: int
    scheme: str  # "http" or "https"

    @property
    def target(self) -> str:
        """The grpc target, host:port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.target}"

    def __str__(self) -> str:
        return self.url


def parse_endpoint(text: str, default_scheme: str = "http") -> Endpoint:
    raw = text.strip()
    if not raw:
        raise ValueError("an endpoint is empty")
    if "://" not in raw:
        raw = f"{default_scheme}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https", "unix", "unixs"):
        raise ValueError(f"endpoint {text!r} has an unknown scheme {parts.scheme!r}")
    if parts.scheme in ("unix", "unixs"):
        raise ValueError(f"endpoint {text!r}: unix sockets are not supported")
    if not parts.hostname:
        raise ValueError(f"endpoint {text!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint {text!r} has a bad port") from exc
    if port is None:
        port = 2379
    return Endpoint(host=parts.hostname, port=port, scheme=parts.scheme)


def parse_endpoints(text: str, default_scheme: str = "http") -> list[Endpoint]:
    """A comma-separated list, in order, duplicates dropped."""
    out: list[Endpoint] = []
    for item in text.split(","):
        if not item.strip():
            continue
        ep = parse_endpoint(item, default_scheme)
        if ep not in out:
            out.append(ep)
    if not out:
        raise ValueError("no endpoints given")
    return out
