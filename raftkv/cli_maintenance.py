"""The member flags of the maintenance work (issue 12), kept in one place: etcd 3.6's
``--corrupt-check-time`` (and its deprecated ``--experimental-corrupt-check-time``), a
Go duration, and ``--experimental-initial-corrupt-check``, a Go boolean.

``add_flags`` adds them to the ``raftkv`` parser; ``config_values`` turns the parsed
values into ``ServerConfig`` fields (a bad value is a ``ConfigError`` naming the flag).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from raftkv.server.config import ConfigError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration(flag: str, value: str) -> float:
    """A Go duration (``0s``, ``500ms``, ``1m30s``; a bare ``0`` too) in seconds."""
    v = value.strip()
    if v == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(v):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not v or pos != len(v):
        raise ConfigError(f"--{flag}: {value!r} is not a duration like 5s or 1m30s")
    return total


def _go_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "t"):
        return True
    if v in ("false", "0", "f"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corrupt-check-time", "--experimental-corrupt-check-time",
                   dest="corrupt_check_time", default="0s",
                   help="duration between cluster corruption check passes (0s: off)")
    p.add_argument("--experimental-initial-corrupt-check", type=_go_bool, default=False,
                   nargs="?", const=True,
                   help="compare the data with the peers' before serving; refuse to start "
                        "on a mismatch")


def config_values(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "corrupt_check_time": go_duration("corrupt-check-time", ns.corrupt_check_time),
        "initial_corrupt_check": bool(ns.experimental_initial_corrupt_check),
    }
