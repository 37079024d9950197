"""``diag check``: judge a cluster over a window and exit like a Nagios plugin.

Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nothing reachable); usage errors 64. The
first stdout line is the Nagios summary (``ETCD CRITICAL - no leader ... | perfdata``);
one line per finding follows with the rule's name and the figures behind it. Rules and thresholds'
sources are in :mod:`raftkv.diag.checks`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import typer

from raftkv.client import Alarm, EtcdError
from raftkv.diag.checks import Finding, Severity, Thresholds, evaluate, worst
from raftkv.diag.common import EXIT_CODES, app, duration_option, emit_json, opts
from raftkv.diag.exitcodes import ExitCode
from raftkv.diag.gather import (
    ClusterView,
    EndpointReport,
    cluster_view,
    resolve_endpoints,
    status_of,
)
from raftkv.diag.latency import Latency, from_metrics
from raftkv.diag.options import Options
from raftkv.diag.units import fmt_duration, hex_id


async def _gather(
    o: Options, window: float | None
) -> tuple[list[EndpointReport], ClusterView, dict[str, Latency], list[Alarm]]:
    endpoints, _ = await resolve_endpoints(o)
    if not endpoints:
        endpoints = list(o.endpoints)
    o.check_metrics_alignment(endpoints)
    targets = [(ep.target, o.metrics_url_for(i, ep)) for i, ep in enumerate(endpoints)]
    lats = await from_metrics(targets, window, o.command_timeout, o.tls)
    reports = list(await asyncio.gather(
        *(status_of(o, i, ep, with_metrics=False) for i, ep in enumerate(endpoints))
    ))
    alarms: list[Alarm] = []
    for r in reports:
        if r.status is None:
            continue
        try:
            async with o.client(r.endpoint) as c:
                alarms = await c.alarms()
            break
        except EtcdError:
            continue
    if window is None:
        for lat in lats:
            lat.leader_changes = None  # all-time counts say nothing about now
    return reports, cluster_view(reports), {lat.label: lat for lat in lats}, alarms


def _summary(sev: Severity, findings: list[Finding], view: ClusterView,
             lats: dict[str, Latency]) -> str:
    if findings:
        first = next(f for f in findings if f.severity == sev)
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return f"ETCD {sev.name} - {first.rule}: {first.message}{more}"
    leader = f"{view.leader_name or '?'} ({hex_id(view.leader)})" if view.leader else "?"
    worst_p99 = _worst(lats, "wal_fsync")
    fsync = (f"WAL fsync P99 max {fmt_duration(worst_p99)}" if worst_p99 is not None
             else "no WAL fsync observed")
    return (f"ETCD OK - leader {leader} term {view.terms_seen[-1] if view.terms_seen else '?'}, "
            f"{view.reachable}/{view.members} members answered, {fsync}")


def _worst(lats: dict[str, Latency], attr: str) -> float | None:
    vals = [getattr(lat, attr).get(0.99) for lat in lats.values()]
    return max((v for v in vals if v is not None and not math.isnan(v)), default=None)


def perfdata(view: ClusterView, lats: dict[str, Latency], th: Thresholds) -> str:
    """Nagios performance data: 'label'=value[unit];warn;crit;min;max."""
    parts = [f"members_answered={view.reachable};;{view.quorum - 1}:;0;{view.members}"]
    wal = _worst(lats, "wal_fsync")
    if wal is not None:
        parts.append(f"wal_fsync_p99={wal:.6f}s;{th.fsync_warn:g};{th.fsync_crit:g};0")
    commit = _worst(lats, "backend_commit")
    if commit is not None:
        parts.append(f"backend_commit_p99={commit:.6f}s;{th.commit_warn:g};;0")
    changes = [lat.leader_changes for lat in lats.values() if lat.leader_changes is not None]
    if changes:
        parts.append(f"leader_changes={max(changes):g};{th.max_leader_changes:g};;0")
    return " ".join(parts)


@app.command(epilog=EXIT_CODES)
def check(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(help="window for latency and leader changes")] = "30s",
    lifetime: Annotated[bool, typer.Option(
        "--lifetime", help="judge all-time latency figures, no waiting")] = False,
    fsync_warn: Annotated[str, typer.Option(
        help="WAL fsync P99 warning (etcd hardware guidance)")] = "10ms",
    fsync_crit: Annotated[str, typer.Option(
        help="WAL fsync P99 critical (etcd mixin)")] = "1s",
    commit_warn: Annotated[str, typer.Option(
        help="backend commit P99 warning (etcd tuning guide)")] = "25ms",
    db_quota_warn: Annotated[float, typer.Option(
        help="DB size share of quota: warning", min=0.0, max=1.0)] = 0.80,
    db_quota_crit: Annotated[float, typer.Option(
        help="DB size share of quota: critical", min=0.0, max=1.0)] = 0.95,
    max_leader_changes: Annotated[int, typer.Option(
        help="leader changes tolerated in the window", min=0)] = 3,
) -> None:
    """Nagios-style check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nothing reachable).

    Rules: no leader; quorum lost; members unreachable or disagreeing on leader/term;
    leader changes above a limit; WAL fsync P99 over --fsync-warn/--fsync-crit; backend
    commit P99 over --commit-warn; DB size over a share of the quota; active alarms;
    unreadable metrics (warning)."""
    o = opts(ctx)
    th = Thresholds(
        fsync_warn=duration_option(fsync_warn), fsync_crit=duration_option(fsync_crit),
        commit_warn=duration_option(commit_warn), db_quota_warn=db_quota_warn,
        db_quota_crit=db_quota_crit, max_leader_changes=max_leader_changes,
    )
    win = None if lifetime else duration_option(window)
    try:
        reports, view, lats, alarms = asyncio.run(_gather(o, win))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    findings = evaluate(reports, view, lats, alarms, th)
    sev = worst(findings)
    findings.sort(key=lambda f: -int(f.severity))
    if o.write_out == "json":
        emit_json({
            "status": sev.name, "exit_code": int(sev),
            "summary": _summary(sev, findings, view, lats),
            "findings": [{"rule": f.rule, "severity": f.severity.name, "message": f.message}
                         for f in findings],
        })
    else:
        print(f"{_summary(sev, findings, view, lats)} | {perfdata(view, lats, th)}")
        for f in findings:
            print(f"{f.severity.name} {f.rule}: {f.message}")
    raise typer.Exit(ExitCode(int(sev)))
