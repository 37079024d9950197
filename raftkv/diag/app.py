"""diag's entry point: builds the Typer app from the command modules and maps exits.

Invariants: the process exits with an :class:`ExitCode`; typer's usage errors (click's
code 2, which a monitoring system would read as CRITICAL) become ``USAGE`` (64); global
options written after the command (``diag status --endpoints X``, as etcdctl allows) are
moved before it; no traceback reaches the user.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from raftkv.diag import (  # noqa: F401 - importing registers the commands
    cmd_alert_rules,
    cmd_check,
    cmd_fsync,
    cmd_health,
    cmd_members,
    cmd_status,
    cmd_watch,
)
from raftkv.diag.common import GLOBAL_OPTIONS, app, err
from raftkv.diag.exitcodes import ExitCode


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options found after the command name to the front."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes = GLOBAL_OPTIONS[name] and "=" not in a
            front.append(a)
            if takes and i + 1 < len(argv):
                front.append(argv[i + 1])
                i += 1
        else:
            rest.append(a)
        i += 1
    return front + rest


def run(argv: list[str]) -> int:
    try:
        rv = app(args=hoist_global_options(argv), prog_name="diag", standalone_mode=False)
    except TyperException as exc:  # typer's (vendored click's) usage errors
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err(exc.format_message())
        return ExitCode.USAGE
    except typer.Abort:
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:  # the promise: one line, never a traceback
        err(f"internal error: {type(exc).__name__}: {exc}")
        return ExitCode.ETCD_ERROR
    return int(rv) if isinstance(rv, int) else ExitCode.OK


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
