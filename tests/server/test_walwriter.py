"""The WAL writer's choice of thread: inline while writes are quick, a worker after a
slow one, inline again after ``QUICK`` quick ones in a row; every write reaches the WAL
either way. The WAL here is a stand-in whose writes take a chosen time on a fake clock."""

from __future__ import annotations

import threading
from typing import Any

from raftkv.raft import Entry
from raftkv.server import walwriter
from raftkv.server.walwriter import WALWriter


class FakeWAL:
    def __init__(self) -> None:
        self.now = 0.0
        self.cost = 0.0001
        self.writes: list[tuple[list[Entry], bool, int]] = []

    def clock(self) -> float:
        return self.now

    def save(self, hs: Any, entries: list[Entry], sync: bool) -> None:
        self.now += self.cost
        self.writes.append((entries, sync, threading.get_ident()))


async def test_quick_writes_stay_inline_a_slow_one_moves_them_to_a_worker() -> None:
    wal = FakeWAL()
    w = WALWriter(wal, wal.clock)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    for i in range(5):
        await w.save(None, [Entry(1, i + 1)], True)
    assert w.inline and {t for _, _, t in wal.writes} == {loop_thread}

    wal.cost = walwriter.SLOW * 2  # the disk slows down: this write still ran inline
    await w.save(None, [Entry(1, 6)], True)
    assert not w.inline and wal.writes[-1][2] == loop_thread

    wal.cost = 0.0001
    for i in range(walwriter.QUICK - 1):
        await w.save(None, [Entry(1, 7 + i)], True)
    assert not w.inline and wal.writes[-1][2] != loop_thread  # in a worker meanwhile
    await w.save(None, [Entry(1, 7 + walwriter.QUICK)], False)
    assert w.inline
    assert len(wal.writes) == 6 + walwriter.QUICK and wal.writes[-1][1] is False


async def test_a_slow_write_in_a_worker_restarts_the_count() -> None:
    wal = FakeWAL()
    w = WALWriter(wal, wal.clock)  # type: ignore[arg-type]
    wal.cost = walwriter.SLOW * 2
    await w.save(None, [], True)
    wal.cost = 0.0001
    for _ in range(walwriter.QUICK - 1):
        await w.save(None, [], True)
    wal.cost = walwriter.SLOW * 2
    await w.save(None, [], True)
    wal.cost = 0.0001
    await w.save(None, [], True)
    assert not w.inline
