"""Durations with units (``10ms``, ``1.5s``, ``2m``) and etcdctl-style display of values.

Invariants: :func:`parse_duration` accepts Go-style duration strings (also compound,
``1m30s``) and a bare number as seconds, returns seconds as a float > 0, and raises
``ValueError`` with one sentence otherwise. IDs print as lower-case hex without padding,
exactly as etcdctl's ``%x``; byte sizes as etcdctl's table does (go-humanize, SI units).
"""

from __future__ import annotations

import math

from raftkv.server.flagtypes import go_duration


def parse_duration(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            value = go_duration(raw)
        except ValueError:
            raise ValueError(
                f"bad duration {text!r}: use a number with a unit, like 10ms, 1s, 2m"
            ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"bad duration {text!r}: it must be above zero")
    return value


def fmt_duration(seconds: float | None) -> str:
    """Human duration with a unit: 812µs, 3.2ms, 1.25s; '-' for unknown, 'n/a' for NaN."""
    if seconds is None:
        return "-"
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "+Inf" if seconds > 0 else "-Inf"
    a = abs(seconds)
    if a == 0:
        return "0s"
    if a < 1e-3:
        return f"{seconds * 1e6:.4g}µs"
    if a < 1:
        return f"{seconds * 1e3:.4g}ms"
    if a < 120:
        return f"{seconds:.4g}s"
    return f"{seconds / 60:.4g}m"


def hex_id(member_id: int) -> str:
    return f"{member_id:x}"


def fmt_bytes(size: int) -> str:
    """go-humanize's Bytes, as etcdctl's table prints DB SIZE: 20 kB, 1.2 MB."""
    if size < 10:
        return f"{size} B"
    sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = math.floor(math.log(size) / math.log(1000))
    val = math.floor(size / 1000**e * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[e]}" if val < 10 else f"{val:.0f} {sizes[e]}"
