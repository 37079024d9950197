"""Reading etcd's Prometheus text exposition from a /metrics URL.

Invariant: :func:`scrape` returns a parsed :class:`Scrape` or raises :class:`MetricsError`
with one sentence (unreachable, HTTP error, not HTTP at all, not Prometheus text, or a
TLS failure, whose ``kind`` is then the same ``ErrorKind.TLS*`` the client port gives).
Samples of a family with several label sets are summed, as ``sum by (le)`` would: one
URL is one member.
"""

from __future__ import annotations

import http.client
import math
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from raftkv.client import ErrorKind, TLSConfig
from raftkv.client.tlsprobe import classify_ssl_error, diagnose
from raftkv.diag.histogram import Histogram

WAL_FSYNC = "etcd_disk_wal_fsync_duration_seconds"
BACKEND_COMMIT = "etcd_disk_backend_commit_duration_seconds"
HAS_LEADER = "etcd_server_has_leader"
LEADER_CHANGES = "etcd_server_leader_changes_seen_total"
DB_SIZE = "etcd_mvcc_db_total_size_in_bytes"
QUOTA = "etcd_server_quota_backend_bytes"
PROPOSALS_FAILED = "etcd_server_proposals_failed_total"


class MetricsError(Exception):
    """A metrics URL that could not be read as Prometheus text."""

    def __init__(self, url: str, detail: str, unreachable: bool = False,
                 kind: ErrorKind | None = None) -> None:
        self.url = url
        self.detail = detail
        self.unreachable = unreachable
        self.kind = kind  # a TLS kind when the https handshake failed, else None
        super().__init__(f"{url}: {detail}")


@dataclass
class Scrape:
    url: str
    scalars: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)

    def histogram(self, name: str) -> Histogram:
        try:
            return self.histograms[name]
        except KeyError:
            raise MetricsError(self.url, f"serves no {name} histogram") from None

    def scalar(self, name: str) -> float | None:
        return self.scalars.get(name)


def parse(url: str, text: str) -> Scrape:
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MetricsError(url, f"does not serve Prometheus text ({exc})") from None
    if not families:
        raise MetricsError(url, "serves no metrics (empty Prometheus text)")
    out = Scrape(url)
    for fam in families:
        if fam.type == "histogram":
            buckets: dict[float, float] = {}
            count = total = 0.0
            for s in fam.samples:
                if s.name.endswith("_bucket"):
                    upper = float(s.labels["le"])
                    buckets[upper] = buckets.get(upper, 0.0) + float(s.value)
                elif s.name.endswith("_count"):
                    count += float(s.value)
                elif s.name.endswith("_sum"):
                    total += float(s.value)
            ordered = tuple(sorted(buckets.items()))
            out.histograms[fam.name] = Histogram(ordered, count, total)
        else:
            for s in fam.samples:
                if math.isnan(float(s.value)):
                    continue
                out.scalars[s.name] = out.scalars.get(s.name, 0.0) + float(s.value)
    return out


def _context(url: str, tls: TLSConfig | None) -> ssl.SSLContext | None:
    if not url.startswith("https"):
        return None
    try:
        return (tls or TLSConfig()).ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise MetricsError(url, f"cannot load the TLS files for https metrics ({exc})") from None


def _tls_failure(url: str, exc: BaseException, tls: TLSConfig | None) -> MetricsError | None:
    """A TLS failure named as for the client port (unknown CA, client cert, name, expiry)."""
    if not isinstance(exc, ssl.SSLError):
        return None
    found = classify_ssl_error(exc, urlsplit(url).hostname or "", tls or TLSConfig())
    detail = found.detail if found is not None else f"TLS failure ({exc})"
    return MetricsError(url, detail, kind=found.kind if found is not None else ErrorKind.TLS)


def _dropped(url: str, exc: BaseException, timeout: float,
             tls: TLSConfig | None) -> MetricsError | None:
    """An https server that closed without answering (raftkv's refuses a client certificate
    so, with no alert): a handshake of our own names why, as for the client port."""
    if not url.startswith("https") or not isinstance(exc, ConnectionError):
        return None
    parts = urlsplit(url)
    found = diagnose(parts.hostname or "", parts.port or 443, tls or TLSConfig(), timeout)
    return MetricsError(url, found.detail, kind=found.kind) if found is not None else None


def scrape(url: str, timeout: float, tls: TLSConfig | None = None) -> Scrape:
    """GET ``url`` (https: verified with ``tls``'s CA, client certificate if given)."""
    req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    ctx = _context(url, tls)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            body = resp.read(64 * 1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise MetricsError(url, f"answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        failure = _tls_failure(url, reason, tls) if isinstance(reason, BaseException) else None
        if failure is not None:
            raise failure from None
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise MetricsError(url, f"unreachable ({detail})", unreachable=True) from None
    except (OSError, ValueError) as exc:
        # first: a member killed mid-request raises RemoteDisconnected, which is both an
        # OSError (ConnectionResetError) and an HTTPException (BadStatusLine); a TLS 1.3
        # server's alert about our client certificate arrives here, after the handshake
        failure = _tls_failure(url, exc, tls) or _dropped(url, exc, timeout, tls)
        if failure is not None:
            raise failure from None
        raise MetricsError(url, f"unreachable ({exc})", unreachable=True) from None
    except http.client.HTTPException as exc:
        # e.g. BadStatusLine from a gRPC-only port (raftkv's client URL), which answers
        # an HTTP/1.1 request with an HTTP/2 frame
        raise MetricsError(url, f"does not speak HTTP/1.1 ({type(exc).__name__}); "
                                "give its metrics URL with --metrics-urls") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MetricsError(url, "does not serve Prometheus text (not UTF-8)") from None
    return parse(url, text)
