"""The global options every diag command shares, as etcdctl spells them.

Invariant: an :class:`Options` is validated on construction (endpoints parsed, TLS files
paired, timeouts positive, metrics URLs aligned with endpoints, a bare metrics base URL
completed with ``/metrics``, ``--user``/``--password`` split as etcdctl does); any problem is a
``ValueError`` with one sentence, which the app turns into the usage exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from raftkv.client import (
    Credentials,
    Endpoint,
    EtcdClient,
    TLSConfig,
    parse_endpoints,
    parse_user,
)


def metrics_url(text: str) -> str:
    """A /metrics URL; a bare base URL, as etcd's --listen-metrics-urls gives it
    (``http://127.0.0.1:2381``), means its ``/metrics``."""
    u = text.strip()
    if not u.startswith(("http://", "https://")):
        raise ValueError(f"metrics URL {u!r} must start with http:// or https://")
    parts = urlsplit(u)
    if not parts.hostname:
        raise ValueError(f"metrics URL {u!r} has no host")
    if parts.path in ("", "/") and not parts.query:
        return urlunsplit(parts._replace(path="/metrics"))
    return u


@dataclass
class Options:
    endpoints: list[Endpoint]
    cluster: bool = False
    tls: TLSConfig = field(default_factory=TLSConfig)
    dial_timeout: float = 2.0
    command_timeout: float = 5.0
    write_out: str = "table"
    metrics_urls: list[str] | None = None
    credentials: Credentials | None = None

    @classmethod
    def build(
        cls,
        endpoints: str,
        cluster: bool,
        cacert: Path | None,
        cert: Path | None,
        key: Path | None,
        dial_timeout: float,
        command_timeout: float,
        write_out: str,
        metrics_urls: str | None,
        user: str | None = None,
        password: str | None = None,
    ) -> Options:
        if write_out not in ("table", "json"):
            raise ValueError(f"--write-out must be table or json, not {write_out!r}")
        tls = TLSConfig(cacert, cert, key)
        scheme = "https" if tls.enabled else "http"
        urls = ([metrics_url(u) for u in metrics_urls.split(",") if u.strip()]
                if metrics_urls else None)
        return cls(
            endpoints=parse_endpoints(endpoints, scheme),
            cluster=cluster,
            tls=tls,
            dial_timeout=dial_timeout,
            command_timeout=command_timeout,
            write_out=write_out,
            metrics_urls=urls,
            credentials=parse_user(user, password),
        )

    def client(self, endpoint: Endpoint) -> EtcdClient:
        return EtcdClient(endpoint, self.tls, self.dial_timeout, self.command_timeout,
                          self.credentials)

    def metrics_url_for(self, index: int, endpoint: Endpoint) -> str:
        if self.metrics_urls is not None:
            return self.metrics_urls[index]
        return f"{endpoint.url}/metrics"

    def check_metrics_alignment(self, endpoints: list[Endpoint]) -> None:
        if self.metrics_urls is not None and len(self.metrics_urls) != len(endpoints):
            raise ValueError(
                f"--metrics-urls has {len(self.metrics_urls)} URLs for {len(endpoints)} "
                "endpoints; give one per endpoint, in the same order"
            )
