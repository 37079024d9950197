"""Event-loop lag: how late a timer fires on the member's loop, as a histogram on /metrics.

Every Raft tick, heartbeat, proposal and read of a member runs on one asyncio loop; any
synchronous stretch (a big SQL statement, building a huge response) delays them all. The
monitor sleeps ``interval`` seconds at a time and records how much later than asked it
woke (``raftkv_server_loop_lag_seconds``). Recent samples are also kept (bounded) so tests
and benchmarks can take exact percentiles over a window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag:
    def __init__(self, registry: CollectorRegistry | None, interval: float = 0.01,
                 keep: int = 20_000) -> None:
        self.interval = interval
        self.histogram = Histogram(
            "raftkv_server_loop_lag_seconds",
            "How late a timer fired on the member's event loop.", buckets=BUCKETS,
            registry=registry)
        self.samples: deque[tuple[float, float]] = deque(maxlen=keep)  # (when, lag)

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            asked = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            lag = max(0.0, now - asked - self.interval)
            self.histogram.observe(lag)
            self.samples.append((now, lag))

    def window(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """The lags of the timers that were pending at some time in [since, until]
        (time.monotonic()): asked before ``until`` and fired after ``since``."""
        return [lag for when, lag in self.samples
                if when >= since and when - lag - self.interval <= until]

    def percentile(self, q: float, since: float = 0.0, until: float = float("inf")) -> float:
        """The q-th percentile (0-100) of the lags of the timers pending in the window."""
        lags = sorted(self.window(since, until))
        if not lags:
            return 0.0
        return lags[min(len(lags) - 1, int(len(lags) * q / 100))]

    def worst(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max(self.window(since, until), default=0.0)
