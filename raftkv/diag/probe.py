"""``diag watch --probe-writes``: a leased probe key written on every tick.

The key lives under a dedicated prefix (default ``__diag_probe/``) and is attached to a
short lease, so it disappears on its own if diag dies; the lease is revoked on exit.
Writes go to the first endpoint that accepts them, starting from the last that did.

Invariants: the probe never writes outside its prefix; the write gap is the time between
the last write that succeeded before a failure and the next write that succeeds.
"""

from __future__ import annotations

import asyncio
import os
import socket

from raftkv.client import EtcdClient, EtcdError


class WriteProbe:
    def __init__(self, clients: list[EtcdClient], prefix: str, ttl: int = 10) -> None:
        self.clients = clients
        self.key = f"{prefix}{socket.gethostname()}-{os.getpid()}".encode()
        self.ttl = ttl
        self.lease = 0
        self.preferred = 0
        self.last_ok: float | None = None
        self.failing_since_ok: float | None = None  # last success before the failures
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

    async def tick(self, now: float) -> float | None:
        """Write once; return a write gap (seconds) when writes resume after failing."""
        n = len(self.clients)
        for i in range(n):
            idx = (self.preferred + i) % n
            try:
                await self._on(idx, f"{now:.3f}".encode())
            except EtcdError as exc:
                self.last_error = str(exc)
                continue
            self.preferred = idx
            self.writes += 1
            gap = None
            if self.failing_since_ok is not None:
                gap = now - self.failing_since_ok
                self.failing_since_ok = None
            self.last_ok = now
            return gap
        self.failures += 1
        if self.failing_since_ok is None and self.last_ok is not None:
            self.failing_since_ok = self.last_ok
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
