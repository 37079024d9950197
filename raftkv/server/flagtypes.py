"""Value types of etcd's flags that argparse lacks: Go durations, Go booleans, feature gates.

Each parser is an argparse ``type``: it returns the value or raises ``ValueError`` with a
short reason, so a bad value (on the command line or in an ``ETCD_*`` variable) is a
usage error naming the flag, as in etcd.

Invariant: ``--feature-gates`` accepts only gates raftkv implements (``FEATURE_GATES``);
any other name of etcd 3.6's is refused rather than silently ignored.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# gate -> what it does in raftkv (etcd 3.6 names)
FEATURE_GATES = {
    "LeaseCheckpoint": "replicate leases' remaining TTLs so they survive a leader change",
    "LeaseCheckpointPersist": "persist checkpointed TTLs (always on in raftkv, as in 3.6)",
}


def go_duration(value: str) -> float:
    """Seconds in a Go duration such as ``300ms``, ``1.5s``, ``5m`` or ``1h30m``."""
    v = value.strip()
    if v == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(v):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(v) or not v:
        raise ValueError(f"time: invalid duration {value!r}")
    return total


def go_bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {value!r}: invalid syntax")


def argtype(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its reason becomes argparse's error message."""
    def wrapped(value: str) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid value {value!r}: {exc}") from None
    wrapped.__name__ = parse.__name__
    return wrapped


def feature_gates(value: str) -> dict[str, bool]:
    """``Gate=true,Other=false`` -> {gate: enabled}, refusing gates raftkv lacks."""
    out: dict[str, bool] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        if not sep:
            raise ValueError(f"missing bool value for {name}")
        if name not in FEATURE_GATES:
            raise ValueError(f"unrecognized feature gate: {name} (raftkv implements "
                             f"{', '.join(sorted(FEATURE_GATES))})")
        try:
            out[name] = go_bool(raw.strip())
        except ValueError as exc:
            raise ValueError(f"invalid value of {part}, err: {exc}") from None
    return out
