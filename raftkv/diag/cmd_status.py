"""``diag status``: etcdctl's ``endpoint status`` plus latency and a cluster line.

Per endpoint: ID, version, DB size and in use, leader, learner, raft term, index, applied
index, WAL fsync P99 and backend commit P99 (lifetime, from /metrics), errors. Then the
cluster: leader, agreement on leader and term, quorum arithmetic, applied-index spread.
Invariant: every field shown comes from the member's own Status answer (no caching).
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich import box
from rich.table import Table

from raftkv.diag.common import (
    EXIT_CODES,
    app,
    console,
    emit_json,
    err,
    first_code,
    opts,
    report_error,
)
from raftkv.diag.exitcodes import for_metrics
from raftkv.diag.gather import ClusterView, EndpointReport, cluster_view, collect
from raftkv.diag.latency import json_float
from raftkv.diag.units import fmt_bytes, fmt_duration, hex_id


def status_json(reports: list[EndpointReport], view: ClusterView) -> dict[str, Any]:
    rows = []
    for r in reports:
        s = r.status
        if s is None:
            continue
        rows.append({
            "endpoint": r.endpoint.target,
            "cluster_id": hex_id(s.cluster_id),
            "id": hex_id(s.member_id),
            "version": s.version,
            "db_size": s.db_size,
            "db_size_in_use": s.db_size_in_use,
            "leader": hex_id(s.leader),
            "is_leader": s.is_leader,
            "is_learner": s.is_learner,
            "raft_term": s.raft_term,
            "raft_index": s.raft_index,
            "raft_applied_index": s.raft_applied_index,
            "revision": s.revision,
            "wal_fsync_p99_seconds": json_float(r.wal_fsync_p99),
            "backend_commit_p99_seconds": json_float(r.backend_commit_p99),
            "errors": list(s.errors),
        })
    failures = [
        {"endpoint": r.endpoint.target, "kind": r.error.kind.name, "error": r.error.detail}
        for r in reports if r.error is not None
    ]
    return {
        "endpoints": rows,
        "failures": failures,
        "cluster": {
            "leader": hex_id(view.leader) if view.leader is not None else None,
            "leader_name": view.leader_name,
            "agree": view.agree,
            "terms": view.terms_seen,
            "members": view.members,
            "voters": view.voters,
            "quorum": view.quorum,
            "failures_tolerated": view.failures_tolerated,
            "reachable": view.reachable,
            "has_quorum": view.has_quorum,
            "applied_index_spread": view.applied_index_spread,
        },
    }


def status_table(reports: list[EndpointReport], view: ClusterView) -> None:
    t = Table(box=box.ASCII, show_lines=False)
    for col in ("ENDPOINT", "ID", "VERSION", "DB SIZE", "DB SIZE IN USE", "IS LEADER",
                "IS LEARNER", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX",
                "WAL FSYNC P99", "BACKEND COMMIT P99", "ERRORS"):
        t.add_column(col)
    for r in reports:
        s = r.status
        if s is None:
            continue
        t.add_row(
            r.endpoint.target, hex_id(s.member_id), s.version, fmt_bytes(s.db_size),
            fmt_bytes(s.db_size_in_use), str(s.is_leader).lower(), str(s.is_learner).lower(),
            str(s.raft_term), str(s.raft_index), str(s.raft_applied_index),
            fmt_duration(r.wal_fsync_p99), fmt_duration(r.backend_commit_p99),
            ", ".join(s.errors),
        )
    c = console()
    c.print(t)
    leader = (f"{view.leader_name or '?'} ({hex_id(view.leader)})"
              if view.leader is not None else "none")
    c.print(
        f"cluster: leader {leader}; members agree on leader and term: "
        f"{'yes' if view.agree else 'no'}; members {view.members} (voters {view.voters}), "
        f"quorum {view.quorum}, failures tolerated {view.failures_tolerated}, "
        f"reachable {view.reachable}; applied index spread "
        f"{view.applied_index_spread if view.applied_index_spread is not None else '-'}"
    )


@app.command(epilog=EXIT_CODES)
def status(ctx: typer.Context) -> None:
    """Per endpoint status (as etcdctl endpoint status) and the cluster's quorum view.

    WAL FSYNC P99 and BACKEND COMMIT P99 are lifetime figures from each member's
    /metrics (use `diag fsync` for a window)."""
    o = opts(ctx)
    try:
        reports = asyncio.run(collect(o))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    codes = []
    for r in reports:
        if r.error is not None:
            codes.append(report_error(r.error))
        elif r.metrics_error is not None:
            err(f"{r.endpoint.target}: metrics {r.metrics_error}")
            codes.append(for_metrics(r.metrics_error))
    view = cluster_view(reports)
    if any(r.status is not None for r in reports):
        if o.write_out == "json":
            emit_json(status_json(reports, view))
        else:
            status_table(reports, view)
    raise typer.Exit(first_code(codes))
