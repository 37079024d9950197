"""``diag fsync``: WAL fsync and backend commit P50/P90/P99 per member.

Default: two /metrics scrapes ``--window`` apart (30s), the window's histogram, reset
tolerant. ``--lifetime``: one scrape, all-time figures. ``--prometheus URL``: ask a
Prometheus server (prometheus-api-client) with ``--selector`` and ``--range``.
Quantiles are interpolated as Prometheus' histogram_quantile (see raftkv.diag.histogram):
"n/a" (JSON null) means the histogram had no observations; a P99 in the +Inf bucket
reads as the highest finite bucket bound (8.192s for etcd's buckets).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from raftkv.diag.common import (
    EXIT_CODES,
    app,
    console,
    duration_option,
    emit_json,
    err,
    first_code,
    opts,
)
from raftkv.diag.exitcodes import ExitCode, for_metrics
from raftkv.diag.gather import resolve_endpoints
from raftkv.diag.latency import (
    DEFAULT_SELECTOR,
    QUANTILES,
    Latency,
    PrometheusError,
    from_metrics,
    from_prometheus,
    json_float,
)
from raftkv.diag.options import Options
from raftkv.diag.units import fmt_duration


def metric_targets(o: Options) -> list[tuple[str, str]]:
    """(label, /metrics URL) per endpoint; --cluster asks the member list first."""
    eps = o.endpoints
    if o.cluster:
        expanded, errors = asyncio.run(resolve_endpoints(o))
        for e in errors:
            err(str(e))
        eps = expanded or eps
        o.check_metrics_alignment(eps)
    if o.metrics_urls is not None and len(o.metrics_urls) != len(eps):
        return [(u, u) for u in o.metrics_urls]
    return [(ep.target, o.metrics_url_for(i, ep)) for i, ep in enumerate(eps)]


def _figs(d: dict[float, float], count: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {f"p{int(q * 100)}": json_float(d.get(q)) for q in QUANTILES}
    if count is not None:
        out["observations"] = count
    return out


def latency_json(lats: list[Latency], window: float | None, prom: bool) -> list[dict[str, Any]]:
    rows = []
    for lat in lats:
        if lat.error is not None:
            continue
        row: dict[str, Any] = {
            ("instance" if prom else "endpoint"): lat.label,
            "wal_fsync": _figs(lat.wal_fsync, lat.wal_fsync_count),
            "backend_commit": _figs(lat.backend_commit, lat.backend_commit_count),
            "leader_changes": lat.leader_changes,
            "has_leader": lat.has_leader,
        }
        if not prom:
            row["url"] = lat.url
            row["window_seconds"] = window
            row["counter_reset"] = lat.reset
        rows.append(row)
    return rows


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def latency_table(lats: list[Latency], window: float | None, prom: bool) -> None:
    t = Table(box=box.ASCII)
    for col in ("INSTANCE" if prom else "ENDPOINT", "HISTOGRAM", "P50", "P90", "P99",
                "OBSERVATIONS", "HAS LEADER", "LEADER CHANGES", "NOTE"):
        t.add_column(col)
    for lat in lats:
        if lat.error is not None:
            continue
        note = "counter reset in window" if lat.reset else ""
        for name, d, n in (("wal fsync", lat.wal_fsync, lat.wal_fsync_count),
                           ("backend commit", lat.backend_commit, lat.backend_commit_count)):
            t.add_row(lat.label, name, *(fmt_duration(d.get(q)) for q in QUANTILES),
                      "-" if n is None else f"{n:g}", _num(lat.has_leader),
                      _num(lat.leader_changes), note)
    c = console()
    c.print(t)
    if prom:
        c.print("figures from Prometheus (rate over the --range)")
    else:
        c.print("figures over the lifetime of each member" if window is None
                else f"figures over a {fmt_duration(window)} window")


@app.command(epilog=EXIT_CODES)
def fsync(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(help="window between the two scrapes")] = "30s",
    lifetime: Annotated[bool, typer.Option("--lifetime", help="all-time figures")] = False,
    prometheus: Annotated[str | None, typer.Option(
        help="ask this Prometheus server instead of /metrics")] = None,
    selector: Annotated[str, typer.Option(
        help="PromQL label selector for etcd's series")] = DEFAULT_SELECTOR,
    range_: Annotated[str, typer.Option("--range", help="PromQL rate range")] = "5m",
) -> None:
    """WAL fsync and backend commit P50/P90/P99 per member (Prometheus' interpolation)."""
    o = opts(ctx)
    win = None if lifetime else duration_option(window)
    codes: list[ExitCode] = []
    if prometheus is not None:
        try:
            lats = from_prometheus(prometheus, selector, range_, timeout=o.command_timeout)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        except PrometheusError as exc:
            err(str(exc))
            raise typer.Exit(ExitCode.PROMETHEUS_ERROR) from None
        if not lats:
            err(f"Prometheus at {prometheus} has no etcd series for selector {selector}")
            raise typer.Exit(ExitCode.PROMETHEUS_ERROR)
    else:
        try:
            targets = metric_targets(o)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        lats = asyncio.run(from_metrics(targets, win, o.command_timeout, o.tls))
        for lat in lats:
            if lat.error is not None:
                err(f"{lat.label}: metrics {lat.error}")
                codes.append(for_metrics(lat.error))
    prom = prometheus is not None
    if any(lat.error is None for lat in lats):
        if o.write_out == "json":
            emit_json(latency_json(lats, win, prom))
        else:
            latency_table(lats, win, prom)
    raise typer.Exit(first_code(codes))
