"""The watch hub alone over a real backend: order, no gaps or duplicates, atomic
revisions, filters, prev_kv, bounded catch-up batches, victims and their memory bound,
compaction and snapshot restore. No gRPC, no Raft: writes go straight to the backend and
their changes to ``notify``, as the apply path does."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from raftkv.mvcc.watch import Batch, State, Watcher, WatchHub
from raftkv.storage.backend import Backend, Change


class Sink:
    """A sink holding at most ``cap`` batches until ``drain``."""

    def __init__(self, cap: int = 1 << 30) -> None:
        self.cap = cap
        self.queued: list[Batch] = []
        self.got: list[Batch] = []
        self.changes: list[Watcher] = []
        self.refused = 0

    def offer(self, w: Watcher, b: Batch) -> bool:
        if len(self.queued) >= self.cap:
            self.refused += 1
            return False
        self.queued.append(b)
        return True

    def changed(self, w: Watcher) -> None:
        self.changes.append(w)

    def drain(self) -> None:
        self.got += self.queued
        self.queued = []


class World:
    def __init__(self, tmp: Path, batch_rows: int = 1000) -> None:
        self.be = Backend.open(tmp / "db", initial_revision=1)
        self.lock = asyncio.Lock()
        self.hub = WatchHub(lambda: self.be, self.lock, batch_rows=batch_rows)
        self.ci = 0

    def write(self, puts: dict[bytes, bytes] | None = None, delete: bytes | None = None,
              delete_end: bytes | None = None) -> int:
        self.ci += 1
        with self.be.write_txn() as w:
            for k, v in (puts or {}).items():
                w.put(k, v)
            if delete is not None:
                w.delete_range(delete, delete_end)
            w.end(self.ci)
        if w.changes_made:
            self.hub.notify(w.rev, w.changes_made)
        return w.rev

    def watcher(self, sink: Sink, key: bytes, end: bytes | None = None, start: int = 0,
                wid: int = 0, **kw: bool) -> Watcher:
        w = Watcher(wid, key, end, start, sink, **kw)  # type: ignore[arg-type]
        self.hub.watch(w)
        return w

    async def catch_up(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            if not self.hub.stats()["unsynced"] and not self.hub.stats()["victims"]:
                return
            await self.hub.step()
        raise AssertionError(f"not caught up: {self.hub.stats()}")


def revs(batches: list[Batch]) -> list[tuple[int, bytes, bool]]:
    return [(c.kv.mod_revision, c.kv.key, c.deleted) for b in batches for c in b.changes]


def check_whole(batches: list[Batch], be_rows: dict[int, int]) -> None:
    """Each batch holds whole revisions: every revision in it has all its rows."""
    for b in batches:
        seen: dict[int, int] = {}
        for c in b.changes:
            seen[c.kv.mod_revision] = seen.get(c.kv.mod_revision, 0) + 1
        for r, n in seen.items():
            assert n == be_rows[r], f"revision {r} split: {n} of {be_rows[r]} rows in a batch"


def test_synced_watcher_gets_each_revision_whole_in_order(tmp_path: Path) -> None:
    wd = World(tmp_path)
    s = Sink()
    wd.watcher(s, b"a", b"b")
    wd.write({b"a1": b"1", b"a2": b"2", b"zz": b"x"})  # one txn: one batch, one revision
    wd.write({b"b": b"out of range"})
    wd.write(delete=b"a", delete_end=b"b")
    assert [len(b.changes) for b in s.queued] == [2, 2]
    assert revs(s.queued) == [(2, b"a1", False), (2, b"a2", False),
                              (4, b"a1", True), (4, b"a2", True)]
    assert [b.revision for b in s.queued] == [2, 4]
    d = s.queued[1].changes[0]
    assert d.kv.value == b"" and d.kv.create_revision == 0 and d.prev is not None
    assert d.prev.value == b"1" and d.prev.mod_revision == 2
    wd.be.close()


def test_single_key_prefix_and_from_key(tmp_path: Path) -> None:
    wd = World(tmp_path)
    one, pre, frm = Sink(), Sink(), Sink()
    wd.watcher(one, b"k")
    wd.watcher(pre, b"k", b"l")
    wd.watcher(frm, b"m", b"\0")
    wd.write({b"k": b"1", b"k2": b"2", b"j": b"3", b"z": b"4"})
    assert revs(one.queued) == [(2, b"k", False)]
    assert revs(pre.queued) == [(2, b"k", False), (2, b"k2", False)]
    assert revs(frm.queued) == [(2, b"z", False)]
    wd.be.close()


def test_filters(tmp_path: Path) -> None:
    wd = World(tmp_path)
    noput, nodel = Sink(), Sink()
    wd.watcher(noput, b"k", no_put=True)
    wd.watcher(nodel, b"k", no_delete=True)
    wd.write({b"k": b"1"})
    wd.write(delete=b"k")
    assert revs(noput.queued) == [(3, b"k", True)]
    assert revs(nodel.queued) == [(2, b"k", False)]
    wd.be.close()


def test_future_start_revision_waits_for_it(tmp_path: Path) -> None:
    wd = World(tmp_path)
    s = Sink()
    w = wd.watcher(s, b"k", start=4)
    assert w.state is State.SYNCED
    wd.write({b"k": b"1"})
    wd.write({b"k": b"2"})
    wd.write({b"k": b"3"})
    assert revs(s.queued) == [(4, b"k", False)]
    wd.be.close()


def test_catch_up_in_bounded_batches_of_whole_revisions_while_writing(tmp_path: Path) -> None:
    seed = int(os.environ.get("WATCH_SEED", random.randrange(1 << 30)))
    print(f"WATCH_SEED={seed}")
    rnd = random.Random(seed)
    wd = World(tmp_path, batch_rows=7)
    rows: dict[int, int] = {}
    for _ in range(60):
        n = rnd.randint(1, 4)
        r = wd.write({f"p{rnd.randrange(20)}".encode(): b"v" for _ in range(n)})
        rows[r] = len(wd.be.history(b"p", b"q", r, r, 100)[0])
    wd.write({b"q0": b"big"})
    big = wd.write({f"p{i:03}".encode(): b"v" for i in range(20)})  # one revision > batch
    rows[big] = 20
    sinks = [Sink() for _ in range(3)]
    starts = [1, rnd.randint(2, 40), big]
    for s, st in zip(sinks, starts, strict=True):
        wd.watcher(s, b"p", b"q", start=st)

    async def go() -> None:
        for _ in range(200):
            if rnd.random() < 0.5:
                r = wd.write({f"p{rnd.randrange(20)}".encode(): b"w"})
                rows[r] = 1
            await wd.hub.step()
        await wd.catch_up()

    asyncio.run(go())
    expect = [(c.kv.mod_revision, c.kv.key, c.deleted)
              for c in wd.be.history(b"p", b"q", 1, wd.be.current_revision(), 1 << 20)[0]]
    for s, st in zip(sinks, starts, strict=True):
        assert revs(s.queued) == [e for e in expect if e[0] >= st], f"seed {seed}"
        check_whole(s.queued, rows)
        assert max(b.size for b in s.queued) <= max(7, 20)
        got_revs = [b.changes[-1].kv.mod_revision for b in s.queued]
        assert got_revs == sorted(got_revs)
    assert wd.hub.stats()["unsynced"] == 0
    wd.be.close()


def test_catch_up_prev_kv(tmp_path: Path) -> None:
    wd = World(tmp_path)
    wd.write({b"k": b"1"})
    wd.write({b"k": b"2"})
    wd.write(delete=b"k")
    s = Sink()
    wd.watcher(s, b"k", start=1, prev_kv=True)
    asyncio.run(wd.catch_up())
    prevs = [c.prev.value if c.prev else None for b in s.queued for c in b.changes]
    assert prevs == [None, b"1", b"2"]
    wd.be.close()


def test_victim_holds_one_batch_and_resumes_without_gaps(tmp_path: Path) -> None:
    """A watcher whose sink never drains holds at most one pending batch however much is
    written: its memory is the sink's bound plus one batch."""
    wd = World(tmp_path, batch_rows=50)
    s = Sink(cap=4)
    w = wd.watcher(s, b"k", b"l")
    other = Sink()
    wd.watcher(other, b"k", b"l")

    async def go() -> None:
        for i in range(2000):
            wd.write({f"k{i % 10}".encode(): b"x" * 100})
            if i % 50 == 0:
                await wd.hub.step()
                st = wd.hub.stats()
                assert len(s.queued) <= 4
                assert st["victims"] <= 1 and st["pending_events"] <= 50, st
        assert w.state is State.VICTIM
        assert len(s.queued) == 4 and w.pending is not None and w.pending.size == 1
        # the reader comes back: drain, kick, catch up
        while w.state is not State.SYNCED:
            s.drain()
            wd.hub.kick()
            await wd.hub.step()
        s.drain()

    asyncio.run(go())
    assert [r for r, _, _ in revs(s.got)] == list(range(2, 2002))
    assert revs(other.queued) == revs(s.got)
    wd.be.close()


def test_compacted_start_and_compaction_of_an_unsynced_watcher(tmp_path: Path) -> None:
    wd = World(tmp_path)
    for i in range(5):
        wd.write({b"k": str(i).encode()})  # revs 2..6
    wd.be.compact(4)
    s = Sink()
    w = wd.watcher(s, b"k", start=3)
    ok = Sink()
    wd.watcher(ok, b"k", start=4)  # at the compacted revision: served, as etcd
    asyncio.run(wd.catch_up())
    assert [b.compact_revision for b in s.queued] == [4] and not s.queued[0].changes
    assert w.state is State.GONE and s.changes == [w]
    assert [r for r, _, _ in revs(ok.queued)] == [4, 5, 6]
    assert wd.hub.stats()["watchers"] == 1
    wd.be.close()


def test_cancel_removes_from_every_group(tmp_path: Path) -> None:
    wd = World(tmp_path)
    s = Sink(cap=0)
    a = wd.watcher(s, b"k")
    b = wd.watcher(s, b"k", start=1)
    wd.write({b"k": b"1"})
    assert a.state is State.VICTIM and b.state is State.UNSYNCED
    assert wd.hub.cancel(a) and wd.hub.cancel(b) and not wd.hub.cancel(a)
    assert wd.hub.stats() == {"watchers": 0, "unsynced": 0, "victims": 0, "pending_events": 0}
    wd.be.close()


def test_restore_turns_synced_into_unsynced(tmp_path: Path) -> None:
    wd = World(tmp_path)
    s = Sink()
    w = wd.watcher(s, b"k")
    # a snapshot install: the backend moved on by writes this hub was never told of
    with wd.be.write_txn() as t:
        t.put(b"k", b"from the leader")
        t.end(99)
    wd.hub.restore()
    assert w.state is State.UNSYNCED and wd.hub.rev == 2
    asyncio.run(wd.catch_up())
    assert revs(s.queued) == [(2, b"k", False)] and w.state is State.SYNCED
    wd.be.close()


@pytest.mark.parametrize("limit", [1, 3])
def test_history_never_splits_a_revision(tmp_path: Path, limit: int) -> None:
    be = Backend.open(tmp_path / "db", initial_revision=1)
    for i in range(3):
        with be.write_txn() as w:
            w.put(b"a", b"1")
            w.put(b"b", b"2")
            w.end(i + 1)
    got, nxt = be.history(b"a", b"c", 2, 4, limit)
    assert [c.kv.mod_revision for c in got] == [2, 2]  # revision 2 whole, never cut
    assert nxt == 3
    got, nxt = be.history(b"a", b"c", 2, 4, 100)
    assert len(got) == 6 and nxt == 5
    assert isinstance(got[0], Change)
    be.close()


def test_a_range_untouched_for_long_is_scanned_a_window_at_a_time(tmp_path: Path) -> None:
    wd = World(tmp_path, batch_rows=5)
    for i in range(40):
        wd.write({b"other": b"%d" % i} if i != 27 else {b"r/x": b"in"})
    s = Sink()
    w = wd.watcher(s, b"r/", b"r0", start=1)
    steps = 0

    async def go() -> None:
        nonlocal steps
        while w.state is not State.SYNCED:
            await wd.hub.step()
            steps += 1

    asyncio.run(go())
    assert revs(s.queued) == [(29, b"r/x", False)]
    assert steps >= 8  # 40 revisions, at most 5 scanned per step
    wd.be.close()


def test_catch_up_batches_are_bounded_in_bytes_too(tmp_path: Path) -> None:
    wd = World(tmp_path)
    wd.hub.batch_bytes = 10_000
    for i in range(30):
        wd.write({b"b/%d" % i: b"x" * 3000})
    big = wd.write({b"b/a": b"y" * 20_000, b"b/b": b"z" * 20_000})  # one revision, 40 kB
    s = Sink()
    wd.watcher(s, b"b/", b"b0", start=1)
    asyncio.run(wd.catch_up())
    sizes = [sum(len(c.kv.value) for c in b.changes) for b in s.queued]
    assert [r for r, _, _ in revs(s.queued)] == [*range(2, 32), big, big]
    # each batch: under the limit, plus the revision that crossed it (here 3 kB or 40 kB)
    assert all(n <= 13_000 for n in sizes[:-1]) and sizes[-1] <= 10_000 + 40_000, sizes
    wd.be.close()


def test_a_large_revision_reaches_every_range_watcher_in_write_order(tmp_path: Path) -> None:
    """Above BISECT_FROM changes the range watchers bisect: same result as the scan."""
    seed = int(os.environ.get("WATCH_SEED", random.randrange(1 << 30)))
    print(f"WATCH_SEED={seed}")
    rnd = random.Random(seed)
    wd = World(tmp_path)
    keys = [b"%c%03d" % (rnd.choice(b"abc"), rnd.randrange(100)) for _ in range(200)]
    keys = list(dict.fromkeys(keys))  # one write per key per revision, as etcd's txn
    ranges = [(b"a", b"b"), (b"b050", b"c"), (b"a010", b"\0"), (b"c099", b"c0990"),
              (b"zz", b"\0"), (b"", b"\0")]
    sinks = [Sink() for _ in ranges]
    for s, (k, e) in zip(sinks, ranges, strict=True):
        wd.watcher(s, k or b"\0", e)
    wd.write(dict.fromkeys(keys, b"v"))
    for s, (k, e) in zip(sinks, ranges, strict=True):
        want = [key for key in keys if key >= k and (e == b"\0" or key < e)]
        assert [c.kv.key for b in s.queued for c in b.changes] == want, f"seed {seed} {k!r}"
    wd.be.close()


def test_restore_keeps_a_future_start_revision(tmp_path: Path) -> None:
    wd = World(tmp_path)
    s = Sink()
    w = wd.watcher(s, b"k", b"l", start=10)
    with wd.be.write_txn() as t:  # a snapshot install moved the backend to revision 2
        t.put(b"k1", b"from the leader")
        t.end(99)
    wd.hub.restore()
    asyncio.run(wd.hub.step())
    assert w.next_rev == 10 and w.state is State.SYNCED
    for i in range(10):
        wd.write({b"k2": b"%d" % i})  # revisions 3..12
    assert [r for r, _, _ in revs(s.queued)] == [10, 11, 12]
    wd.be.close()
