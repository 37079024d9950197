"""The Typer app object, its global options (etcdctl's), and output helpers.

Invariants: data goes to stdout (a table for people, ``-w json`` for programs), messages
to stderr, one line per bad endpoint, prefixed ``diag:``; the endpoint, TLS and metrics
options may also come from ``DIAG_ENDPOINTS``, ``DIAG_CACERT``, ``DIAG_CERT``, ``DIAG_KEY``,
``DIAG_METRICS_URLS``, ``DIAG_USER`` and ``DIAG_PASSWORD`` (a flag wins), as etcdctl reads
``ETCDCTL_*``; commands return an
:class:`~raftkv.diag.exitcodes.ExitCode` through ``typer.Exit``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from raftkv.client import EtcdError
from raftkv.diag.exitcodes import FOR_KIND, ExitCode, help_text
from raftkv.diag.options import Options
from raftkv.diag.units import parse_duration

EXIT_CODES = help_text()

app = typer.Typer(
    name="diag",
    help="Diagnose etcd (and raftkv) clusters: status, health, members, fsync latency, "
    "a Nagios-style check, and a leader watch. Global options may come before or after "
    "the command, as with etcdctl.",
    epilog=EXIT_CODES,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Global options: name -> takes a value. Used to hoist them before the command.
GLOBAL_OPTIONS: dict[str, bool] = {
    "--endpoints": True, "--cluster": False, "--cacert": True, "--cert": True,
    "--key": True, "--dial-timeout": True, "--command-timeout": True,
    "--write-out": True, "-w": True, "--metrics-urls": True, "--user": True,
    "--password": True,
}


def duration_option(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.callback()
def global_options(
    ctx: typer.Context,
    endpoints: Annotated[str, typer.Option(
        envvar="DIAG_ENDPOINTS", help="comma-separated client endpoints (host:port, http(s)://host:port)")
    ] = "127.0.0.1:2379",
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="use every member's client URLs from the member list")] = False,
    cacert: Annotated[Path | None, typer.Option(
        envvar="DIAG_CACERT", help="CA bundle to verify servers")] = None,
    cert: Annotated[Path | None, typer.Option(
        envvar="DIAG_CERT", help="client certificate (mutual TLS)")] = None,
    key: Annotated[Path | None, typer.Option(
        envvar="DIAG_KEY", help="client key (mutual TLS)")] = None,
    dial_timeout: Annotated[str, typer.Option(help="dial timeout, e.g. 2s")] = "2s",
    command_timeout: Annotated[str, typer.Option(help="per-call timeout, e.g. 5s")] = "5s",
    write_out: Annotated[str, typer.Option("--write-out", "-w", help="table or json")] = "table",
    metrics_urls: Annotated[str | None, typer.Option(
        envvar="DIAG_METRICS_URLS",
        help="comma-separated metrics URLs, one per endpoint in order, as etcd's "
        "--listen-metrics-urls gives them (http://host:2381 reads /metrics there; https "
        "uses --cacert/--cert/--key) (default: each client URL + /metrics)")] = None,
    user: Annotated[str | None, typer.Option(
        envvar="DIAG_USER", help="etcd user, name[:password], as etcdctl's --user")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="DIAG_PASSWORD", show_envvar=False,
        help="the user's password (then --user is the whole name), as etcdctl's")] = None,
) -> None:
    try:
        ctx.obj = Options.build(
            endpoints, cluster, cacert, cert, key,
            duration_option(dial_timeout), duration_option(command_timeout),
            write_out, metrics_urls, user, password,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def opts(ctx: typer.Context) -> Options:
    o = ctx.find_object(Options)
    assert o is not None
    return o


def err(msg: str) -> None:
    print(f"diag: {msg}", file=sys.stderr, flush=True)


def report_error(e: EtcdError) -> ExitCode:
    err(str(e))
    return FOR_KIND[e.kind]


def console() -> Console:
    tty = sys.stdout.isatty()
    return Console(width=None if tty else 250, soft_wrap=not tty, highlight=False)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, allow_nan=False))


def first_code(codes: list[ExitCode]) -> ExitCode:
    for c in codes:
        if c != ExitCode.OK:
            return c
    return ExitCode.OK
