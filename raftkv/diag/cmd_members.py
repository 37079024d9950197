"""``diag members``: the member list (etcdctl member list) with hex IDs.

Asks the endpoints in order and prints the first answer; each endpoint that failed on
the way gets its line on stderr. Invariant: STATUS is "started" when the member has a
name (it has joined), "unstarted" otherwise, exactly as etcdctl prints it.
"""

from __future__ import annotations

import asyncio

import typer
from rich import box
from rich.table import Table

from raftkv.client import EtcdError, MemberList
from raftkv.diag.common import EXIT_CODES, app, console, emit_json, first_code, opts, report_error
from raftkv.diag.exitcodes import ExitCode
from raftkv.diag.gather import peer_port_error, resolve_endpoints
from raftkv.diag.options import Options
from raftkv.diag.units import hex_id


async def _first_list(o: Options) -> tuple[MemberList | None, list[EtcdError]]:
    endpoints, errors = await resolve_endpoints(o)
    for ep in endpoints:
        try:
            async with o.client(ep) as c:
                ml = await c.member_list()
        except EtcdError as exc:
            errors.append(exc)
            continue
        bad = peer_port_error(ep, ml)
        if bad is not None:
            errors.append(bad)
            continue
        return ml, errors
    return None, errors


@app.command(epilog=EXIT_CODES)
def members(ctx: typer.Context) -> None:
    """Member list: ID, status, name, peer and client URLs, learner flag."""
    o = opts(ctx)
    ml, errors = asyncio.run(_first_list(o))
    codes = [report_error(e) for e in errors]
    if ml is not None:
        rows = [
            {
                "id": hex_id(m.id),
                "status": "started" if m.name else "unstarted",
                "name": m.name,
                "peer_urls": list(m.peer_urls),
                "client_urls": list(m.client_urls),
                "is_learner": m.is_learner,
            }
            for m in ml.members
        ]
        if o.write_out == "json":
            emit_json({"cluster_id": hex_id(ml.cluster_id), "member_id": hex_id(ml.member_id),
                       "raft_term": ml.raft_term, "members": rows})
        else:
            t = Table(box=box.ASCII)
            for col in ("ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"):
                t.add_column(col)
            for m in ml.members:
                t.add_row(hex_id(m.id), "started" if m.name else "unstarted", m.name,
                          ",".join(m.peer_urls), ",".join(m.client_urls),
                          str(m.is_learner).lower())
            console().print(t)
    elif not codes:
        codes.append(ExitCode.UNKNOWN)
    raise typer.Exit(first_code(codes))
