"""Picking free loopback ports for local clusters (make demo, the tests).

Ports come from below the kernel's ephemeral range: a port taken from that range (bind
to port 0) can be handed by the kernel to some client connection while the member that
owns it is down, and that member's restart then fails with "address already in use".
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_taken: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, below the ephemeral range, not handed out before."""
    top = max(ephemeral_range()[0], 12000)
    while True:
        port = random.randrange(10000, top)
        if port in _taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _taken.add(port)
        return port
