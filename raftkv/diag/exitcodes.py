"""diag's exit codes, in one place, with the sentence ``--help`` prints for each.

Invariants: ``check`` uses 0-3 like a Nagios plugin (OK, WARNING, CRITICAL, UNKNOWN);
every other failure has its own code above 3, each TLS cause its own (5 and 12-16), each
auth failure too (17 wrong user or password, 18 no user while auth is on); a
usage error is 64 (sysexits' EX_USAGE), never click's 2, which would read as CRITICAL to
a monitoring system.
"""

from __future__ import annotations

import enum

from raftkv.client import ErrorKind
from raftkv.diag.scrape import MetricsError


class ExitCode(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
    UNREACHABLE = 4
    TLS_FAILURE = 5
    NOT_ETCD = 6
    TIMEOUT = 7
    BAD_METRICS = 8
    UNHEALTHY = 9
    ETCD_ERROR = 10
    PROMETHEUS_ERROR = 11
    TLS_UNKNOWN_CA = 12
    TLS_CLIENT_CERT_REQUIRED = 13
    TLS_CLIENT_CERT_REJECTED = 14
    TLS_HOSTNAME_MISMATCH = 15
    TLS_CERT_EXPIRED = 16
    AUTH_FAILED = 17
    AUTH_REQUIRED = 18
    USAGE = 64
    INTERRUPTED = 130


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "everything reported fine (check: no rule fired)",
    ExitCode.WARNING: "check: a warning rule fired",
    ExitCode.CRITICAL: "check: a critical rule fired (e.g. no leader, quorum lost)",
    ExitCode.UNKNOWN: "check: nothing was reachable, nothing could be judged",
    ExitCode.UNREACHABLE: "an endpoint refused or dropped the connection",
    ExitCode.TLS_FAILURE: "TLS failed otherwise (e.g. plain text to a TLS port or the reverse)",
    ExitCode.NOT_ETCD: "the port is not an etcd client port (e.g. a peer port)",
    ExitCode.TIMEOUT: "dial or command timeout",
    ExitCode.BAD_METRICS: "a metrics URL did not serve etcd's Prometheus text",
    ExitCode.UNHEALTHY: "health: an endpoint answered but is not healthy",
    ExitCode.ETCD_ERROR: "etcd answered with an error",
    ExitCode.PROMETHEUS_ERROR: "the Prometheus server failed or returned nothing",
    ExitCode.TLS_UNKNOWN_CA: "TLS: the server's certificate is not signed by --cacert's CA",
    ExitCode.TLS_CLIENT_CERT_REQUIRED: "TLS: the server requires a client certificate (--cert)",
    ExitCode.TLS_CLIENT_CERT_REJECTED: "TLS: the server rejected the client certificate",
    ExitCode.TLS_HOSTNAME_MISMATCH: "TLS: the server's certificate does not name the endpoint",
    ExitCode.TLS_CERT_EXPIRED: "TLS: a certificate (the server's or --cert) has expired",
    ExitCode.AUTH_FAILED: "auth: wrong user name or password (--user/--password)",
    ExitCode.AUTH_REQUIRED: "auth: the cluster has auth enabled and no --user was given",
    ExitCode.USAGE: "bad command line (unknown option, bad duration, bad endpoint)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

FOR_KIND: dict[ErrorKind, ExitCode] = {
    ErrorKind.UNREACHABLE: ExitCode.UNREACHABLE,
    ErrorKind.TLS: ExitCode.TLS_FAILURE,
    ErrorKind.TLS_UNKNOWN_CA: ExitCode.TLS_UNKNOWN_CA,
    ErrorKind.TLS_CLIENT_CERT_REQUIRED: ExitCode.TLS_CLIENT_CERT_REQUIRED,
    ErrorKind.TLS_CLIENT_CERT_REJECTED: ExitCode.TLS_CLIENT_CERT_REJECTED,
    ErrorKind.TLS_HOSTNAME_MISMATCH: ExitCode.TLS_HOSTNAME_MISMATCH,
    ErrorKind.TLS_EXPIRED: ExitCode.TLS_CERT_EXPIRED,
    ErrorKind.NOT_ETCD: ExitCode.NOT_ETCD,
    ErrorKind.TIMEOUT: ExitCode.TIMEOUT,
    ErrorKind.AUTH_FAILED: ExitCode.AUTH_FAILED,
    ErrorKind.AUTH_REQUIRED: ExitCode.AUTH_REQUIRED,
    ErrorKind.RPC: ExitCode.ETCD_ERROR,
    ErrorKind.USAGE: ExitCode.USAGE,
}


def for_metrics(e: MetricsError) -> ExitCode:
    """A metrics URL's failure: its TLS cause, unreachable, or not etcd's metrics."""
    if e.kind is not None:
        return FOR_KIND[e.kind]
    return ExitCode.UNREACHABLE if e.unreachable else ExitCode.BAD_METRICS


def help_text() -> str:
    """The exit-code table for --help (one line each, rich/click friendly)."""
    lines = ["Exit codes (when several endpoints fail, the first failing one's code):"]
    lines += [f"{int(code):>3}  {code.name}: {MEANING[code]}" for code in ExitCode]
    return "\n\n".join(lines)
