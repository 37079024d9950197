"""Where the Ready loop's WAL writes run: in the event loop's thread while this disk's
writes are quick, in a worker thread once one is slow.

An fdatasync on a fast disk takes tens of microseconds, less than handing the write to
a worker and waking the loop when it is done; on a slow disk it takes milliseconds,
which must not stall the loop's other work (client calls, reads, probes). So a write runs
inline until one takes longer than ``SLOW``; writes then go to a worker until ``QUICK``
of them in a row were quick again.

Invariants: each write returns only once the WAL holds it (with its fdatasync when
``sync``), wherever it ran, so nothing is sent or acknowledged before it is durable;
the caller holds the WAL lock for the write; the choice is per member and depends only
on measured durations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from raftkv.raft import Entry, HardState
from raftkv.storage.wal import WAL

SLOW = 0.002  # seconds: a write slower than this moves writes to a worker
QUICK = 200  # quick writes in a row, in a worker, before writes run inline again


class WALWriter:
    def __init__(self, wal: WAL, clock: Callable[[], float] = time.perf_counter) -> None:
        self.wal = wal
        self.clock = clock
        self.inline = True
        self._quick = 0  # consecutive quick writes while in a worker

    async def save(self, hs: HardState | None, entries: list[Entry], sync: bool) -> None:
        if self.inline:
            took = self._timed(hs, entries, sync)
            if took > SLOW:
                self.inline = False
                self._quick = 0
            return
        took = await asyncio.to_thread(self._timed, hs, entries, sync)
        self._quick = self._quick + 1 if took <= SLOW else 0
        if self._quick >= QUICK:
            self.inline = True

    def _timed(self, hs: HardState | None, entries: list[Entry], sync: bool) -> float:
        t0 = self.clock()
        self.wal.save(hs, entries, sync)
        return self.clock() - t0
