"""diag's exit codes, in one place, with the sentence ``--help`` prints for each.

Invariants: ``check`` uses 0-3 like a Nagios plugin (OK, WARNING, CRITICAL, UNKNOWN);
every other failure has its own code above 3; a usage error is 64 (sysexits' EX_USAGE),
never click's 2, which would read as CRITICAL to a monitoring system.
"""

from __future__ import annotations

import enum

from raftkv.client import ErrorKind


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
    USAGE = 64
    INTERRUPTED = 130


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "everything reported fine (check: no rule fired)",
    ExitCode.WARNING: "check: a warning rule fired",
    ExitCode.CRITICAL: "check: a critical rule fired (e.g. no leader, quorum lost)",
    ExitCode.UNKNOWN: "check: nothing was reachable, nothing could be judged",
    ExitCode.UNREACHABLE: "an endpoint refused or dropped the connection",
    ExitCode.TLS_FAILURE: "TLS handshake failed (CA, client certificate, or plain vs TLS)",
    ExitCode.NOT_ETCD: "the port is not an etcd client port (e.g. a peer port)",
    ExitCode.TIMEOUT: "dial or command timeout",
    ExitCode.BAD_METRICS: "a metrics URL did not serve etcd's Prometheus text",
    ExitCode.UNHEALTHY: "health: an endpoint answered but is not healthy",
    ExitCode.ETCD_ERROR: "etcd answered with an error",
    ExitCode.PROMETHEUS_ERROR: "the Prometheus server failed or returned nothing",
    ExitCode.USAGE: "bad command line (unknown option, bad duration, bad endpoint)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

FOR_KIND: dict[ErrorKind, ExitCode] = {
    ErrorKind.UNREACHABLE: ExitCode.UNREACHABLE,
    ErrorKind.TLS: ExitCode.TLS_FAILURE,
    ErrorKind.NOT_ETCD: ExitCode.NOT_ETCD,
    ErrorKind.TIMEOUT: ExitCode.TIMEOUT,
    ErrorKind.RPC: ExitCode.ETCD_ERROR,
    ErrorKind.USAGE: ExitCode.USAGE,
}


def help_text() -> str:
    """The exit-code table for --help (one line each, rich/click friendly)."""
    lines = ["Exit codes (when several endpoints fail, the first failing one's code):"]
    lines += [f"{int(code):>3}  {code.name}: {MEANING[code]}" for code in ExitCode]
    return "\n\n".join(lines)
