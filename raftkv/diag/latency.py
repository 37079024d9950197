"""WAL fsync and backend commit latency quantiles per member, from /metrics or Prometheus.

From /metrics: one scrape (``--lifetime``: all-time figures since the member started) or
two scrapes ``window`` seconds apart whose difference is the window's histogram (reset
tolerant, see :mod:`raftkv.diag.histogram`). Through Prometheus: the issue's
``histogram_quantile(q, sum by (instance, le) (rate(..._bucket{selector}[range])))`` via
prometheus-api-client, plus ``etcd_server_has_leader`` and leader changes in the range.

Invariant: a quantile is NaN exactly when the (window's) histogram holds no observation
(or Prometheus says NaN); a URL that fails yields an error, never a made-up figure.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from raftkv.client import TLSConfig
from raftkv.diag.histogram import Histogram, window
from raftkv.diag.scrape import (
    BACKEND_COMMIT,
    LEADER_CHANGES,
    WAL_FSYNC,
    MetricsError,
    Scrape,
    scrape,
)

QUANTILES = (0.5, 0.9, 0.99)
DEFAULT_SELECTOR = 'job=~".*etcd.*"'


@dataclass
class Latency:
    """One member's figures: quantile -> seconds, per histogram."""

    label: str
    url: str
    wal_fsync: dict[float, float] = field(default_factory=dict)
    backend_commit: dict[float, float] = field(default_factory=dict)
    wal_fsync_count: float | None = None
    backend_commit_count: float | None = None
    leader_changes: float | None = None
    has_leader: float | None = None
    reset: bool = False
    error: MetricsError | None = None
    last: Scrape | None = None


def _figures(h: Histogram, quantiles: Sequence[float]) -> dict[float, float]:
    return {q: h.quantile(q) for q in quantiles}


async def _scrape(url: str, timeout: float, tls: TLSConfig | None) -> Scrape:
    return await asyncio.to_thread(scrape, url, timeout, tls)


async def from_metrics(
    targets: Sequence[tuple[str, str]],
    window_seconds: float | None,
    timeout: float,
    tls: TLSConfig | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> list[Latency]:
    """``targets`` are (label, url). ``window_seconds`` None means lifetime figures."""
    out = [Latency(label, url) for label, url in targets]

    async def one(lat: Latency) -> Scrape | None:
        try:
            return await _scrape(lat.url, timeout, tls)
        except MetricsError as exc:
            lat.error = exc
            return None

    first = await asyncio.gather(*(one(lat) for lat in out))
    if window_seconds is not None:
        await asyncio.sleep(window_seconds)  # the measurement window itself
        second = await asyncio.gather(
            *(one(lat) if s is not None else _none() for lat, s in zip(out, first, strict=True))
        )
    else:
        second = first
    for lat, a, b in zip(out, first, second, strict=True):
        if a is None or b is None:
            continue
        lat.last = b
        try:
            wal = b.histogram(WAL_FSYNC)
            commit = b.histogram(BACKEND_COMMIT)
            if window_seconds is not None:
                w1 = window(a.histogram(WAL_FSYNC), wal)
                w2 = window(a.histogram(BACKEND_COMMIT), commit)
                wal, commit = w1.histogram, w2.histogram
                lat.reset = w1.reset or w2.reset
                before = a.scalar(LEADER_CHANGES)
                after = b.scalar(LEADER_CHANGES)
                if before is not None and after is not None:
                    lat.leader_changes = after - before if after >= before else after
            else:
                lat.leader_changes = b.scalar(LEADER_CHANGES)
        except MetricsError as exc:
            lat.error = exc
            continue
        lat.wal_fsync = _figures(wal, quantiles)
        lat.backend_commit = _figures(commit, quantiles)
        lat.wal_fsync_count = wal.observations
        lat.backend_commit_count = commit.observations
        lat.has_leader = b.scalar("etcd_server_has_leader")
    return out


async def _none() -> None:
    return None


# -- Prometheus ----------------------------------------------------------------------

_RANGE = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


class PrometheusError(Exception):
    pass


def quantile_query(q: float, metric: str, selector: str, range_: str) -> str:
    return (
        f"histogram_quantile({q:g}, sum by (instance, le) "
        f"(rate({metric}_bucket{{{selector}}}[{range_}])))"
    )


def from_prometheus(
    url: str,
    selector: str = DEFAULT_SELECTOR,
    range_: str = "5m",
    quantiles: Sequence[float] = QUANTILES,
    timeout: float = 10.0,
    disable_ssl: bool = False,
) -> list[Latency]:
    """One :class:`Latency` per ``instance`` label that Prometheus knows for the selector."""
    if not _RANGE.match(range_):
        raise ValueError(f"bad Prometheus range {range_!r}: use e.g. 30s, 5m, 1h")
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from urllib3.util.retry import Retry

    by_instance: dict[str, Latency] = {}

    def lat_for(metric: dict[str, str]) -> Latency:
        inst = metric.get("instance", "")
        return by_instance.setdefault(inst, Latency(inst, url))

    try:
        # One quick retry, not the library's default backoff: a CLI should fail fast.
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504])
        prom = PrometheusConnect(url=url, disable_ssl=disable_ssl, timeout=timeout,
                                 retry=retry)
        for metric, attr in ((WAL_FSYNC, "wal_fsync"), (BACKEND_COMMIT, "backend_commit")):
            for q in quantiles:
                for row in prom.custom_query(quantile_query(q, metric, selector, range_)):
                    getattr(lat_for(row["metric"]), attr)[q] = float(row["value"][1])
        for row in prom.custom_query(f"max by (instance) (etcd_server_has_leader{{{selector}}})"):
            lat_for(row["metric"]).has_leader = float(row["value"][1])
        changes = (
            f"sum by (instance) (increase({LEADER_CHANGES}{{{selector}}}[{range_}]))"
        )
        for row in prom.custom_query(changes):
            lat_for(row["metric"]).leader_changes = float(row["value"][1])
    except PrometheusApiClientException as exc:
        raise PrometheusError(f"Prometheus at {url} refused the query: {exc}") from None
    except Exception as exc:  # requests' connection errors and the like
        raise PrometheusError(f"Prometheus at {url} is unreachable ({_reason(exc)})") from None
    return [by_instance[k] for k in sorted(by_instance)]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:200]


def json_float(x: float | None) -> float | None:
    """NaN and infinities are not JSON; an empty histogram's quantile becomes null."""
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return x
