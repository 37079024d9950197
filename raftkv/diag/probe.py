"""``diag watch --probe-writes``: a leased probe key written on every tick.

The key lives under a dedicated prefix (default ``__diag_probe/``) and is attached to a
short lease, so it disappears on its own if diag dies; the lease is revoked on exit.
Writes go to the first endpoint that accepts them, starting from the last that did.

Invariants: the probe never writes outside its prefix; a write gap is the time between
the completions of two consecutive successful writes (a write that blocks through an
election and then succeeds is a gap too, not only failed writes); :meth:`tick` reports a
gap once it exceeds ``report_after``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from raftkv.client import EtcdClient, EtcdError


class WriteProbe:
    def __init__(self, clients: list[EtcdClient], prefix: str, ttl: int = 10,
                 report_after: float = 0.3) -> None:
        self.clients = clients
        self.key = f"{prefix}{socket.gethostname()}-{os.getpid()}".encode()
        self.ttl = ttl
        self.lease = 0
        self.preferred = 0
        self.report_after = report_after
        self.last_ok: float | None = None  # completion time of the last successful write
        self.longest_gap = 0.0
        self.writes = 0
        self.failures = 0
        self.last_error = ""

    async def _on(self, fn_index: int, value: bytes) -> None:
        c = self.clients[fn_index]
        if not self.lease:
            self.lease = await c.lease_grant(self.ttl)
        try:
            await c.put(self.key, value, self.lease)
        except EtcdError as exc:
            if "lease not found" in exc.detail:
                self.lease = 0
            raise

    async def tick(self) -> float | None:
        """Write once; return the write gap (seconds) if it exceeded ``report_after``."""
        n = len(self.clients)
        for i in range(n):
            idx = (self.preferred + i) % n
            try:
                await self._on(idx, f"{time.time():.3f}".encode())
            except EtcdError as exc:
                self.last_error = str(exc)
                continue
            done = time.monotonic()
            self.preferred = idx
            self.writes += 1
            gap = None if self.last_ok is None else done - self.last_ok
            self.last_ok = done
            if gap is not None:
                self.longest_gap = max(self.longest_gap, gap)
                if gap > self.report_after:
                    return gap
            return None
        self.failures += 1
        return None

    async def close(self) -> None:
        if not self.lease:
            return
        for c in self.clients:
            try:
                await asyncio.wait_for(c.lease_revoke(self.lease), 2.0)
                return
            except (EtcdError, TimeoutError):
                continue
