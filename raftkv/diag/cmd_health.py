"""``diag health``: a linearizable read per endpoint, with its latency, as etcdctl does.

Healthy means the read of key "health" went through the leader (a linearizable Range)
and no alarm is active; permission denied still counts as healthy, as in etcdctl (the
cluster answered). Invariant: an endpoint that cannot even be dialled gets its transport
exit code; one that answers but fails the read is UNHEALTHY, with the reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import typer
from rich import box
from rich.table import Table

from raftkv.client import Endpoint, ErrorKind, EtcdError
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
from raftkv.diag.exitcodes import FOR_KIND, ExitCode
from raftkv.diag.gather import resolve_endpoints
from raftkv.diag.options import Options
from raftkv.diag.units import fmt_duration


@dataclass
class Health:
    endpoint: Endpoint
    healthy: bool
    took: float | None
    error: str
    code: ExitCode


async def _one(o: Options, ep: Endpoint) -> Health:
    c = o.client(ep)
    try:
        try:
            await c.connect()
        except EtcdError as exc:
            return Health(ep, False, None, str(exc), FOR_KIND[exc.kind])
        t0 = time.perf_counter()
        try:
            await c.get(b"health")
        except EtcdError as exc:
            if "permission denied" not in exc.detail.lower():
                took = time.perf_counter() - t0
                why = exc.detail
                if exc.kind == ErrorKind.TIMEOUT:
                    why = f"linearizable read timed out (no leader or no quorum?): {why}"
                return Health(ep, False, took, why, ExitCode.UNHEALTHY)
        took = time.perf_counter() - t0
        try:
            alarms = await c.alarms()
        except EtcdError as exc:
            return Health(ep, False, took, f"alarm list failed: {exc.detail}", ExitCode.UNHEALTHY)
        if alarms:
            names = ", ".join(f"{a.alarm} on {a.member_id:x}" for a in alarms)
            return Health(ep, False, took, f"active alarm(s): {names}", ExitCode.UNHEALTHY)
        return Health(ep, True, took, "", ExitCode.OK)
    finally:
        await c.close()


async def _all(o: Options) -> tuple[list[Health], list[EtcdError]]:
    endpoints, errors = await resolve_endpoints(o)
    return list(await asyncio.gather(*(_one(o, ep) for ep in endpoints))), errors


@app.command(epilog=EXIT_CODES)
def health(ctx: typer.Context) -> None:
    """Per endpoint: a linearizable read of key "health" and its latency; healthy or why not."""
    o = opts(ctx)
    results, errors = asyncio.run(_all(o))
    codes = [report_error(e) for e in errors]
    for h in results:
        if not h.healthy:
            err(f"{h.endpoint.target} is unhealthy: {h.error}")
        codes.append(h.code)
    if o.write_out == "json":
        emit_json([
            {"endpoint": h.endpoint.target, "health": h.healthy,
             "took": fmt_duration(h.took), "took_seconds": h.took, "error": h.error}
            for h in results
        ])
    else:
        t = Table(box=box.ASCII)
        for col in ("ENDPOINT", "HEALTH", "TOOK", "ERROR"):
            t.add_column(col)
        for h in results:
            t.add_row(h.endpoint.target, str(h.healthy).lower(), fmt_duration(h.took), h.error)
        console().print(t)
    raise typer.Exit(first_code(codes))
