"""The member flags of the maintenance work (issue 12), kept in one place: etcd 3.6's
``--corrupt-check-time`` (and its deprecated ``--experimental-corrupt-check-time``), a
Go duration, and ``--experimental-initial-corrupt-check``, a Go boolean.

``add_flags`` adds them to the ``raftkv`` parser; ``config_values`` turns the parsed
values into ``ServerConfig`` fields (a bad value is a ``ConfigError`` naming the flag).
"""

from __future__ import annotations

import argparse
from typing import Any

from raftkv.server.config import parse_duration
from raftkv.server.flagtypes import argtype, go_bool


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corrupt-check-time", "--experimental-corrupt-check-time",
                   dest="corrupt_check_time", default="0s",
                   help="duration between cluster corruption check passes (0s: off)")
    p.add_argument("--experimental-initial-corrupt-check", type=argtype(go_bool), default=False,
                   nargs="?", const=True,
                   help="compare the data with the peers' before serving; refuse to start "
                        "on a mismatch")


def config_values(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "corrupt_check_time": parse_duration("corrupt-check-time", ns.corrupt_check_time),
        "initial_corrupt_check": bool(ns.experimental_initial_corrupt_check),
    }
