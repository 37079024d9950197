"""The watch hub: etcd's watchable store over a member's applied state (no gRPC here).

Job: keep every watcher of this member in one of etcd's groups and feed it the changes of
each applied revision, in revision order, from the apply path (``notify``) or, for a
watcher behind the current revision, from the backend's history (``run``, the catch-up
task). The gRPC side (raftkv.server.watchstream) gives each watcher a ``Sink``.

Groups (as etcd's server/storage/mvcc/watchable_store.go):
- synced: ``next_rev`` > the hub's revision; ``notify`` hands it the matching changes of
  each new revision at once (one revision = one ``Batch``).
- unsynced: behind; the catch-up task reads its range's history [next_rev, rev] from the
  backend at most ``batch_rows`` rows at a time (never splitting a revision), under the
  backend lock, one watcher per step with a yield to the loop in between, then moves it
  to synced once it reached the hub's revision. One below the backend's compacted
  revision gets a compacted batch instead and leaves the hub.
- victims: its sink refused a batch (full); the watcher holds that one batch
  (``pending``), leaves the synced group (so it receives nothing more) and is offered
  the batch again when a sink frees room (``kick``); then it is unsynced or synced.

Invariants: a watcher receives each revision of its range at most once and in order,
with no gap: ``next_rev`` only grows and is moved past a revision only once that
revision's batch was accepted by its sink or is the pending batch of a victim. A batch
holds whole revisions. Memory per watcher: at most one pending batch (``batch_rows``
rows, and ``batch_bytes`` of keys and values plus the revision that crosses it),
plus what its sink holds (bounded by the sink). After a snapshot install (``restore``)
every synced watcher becomes unsynced and catches up from the new backend (etcd's
Restore).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from raftkv.storage.backend import Backend, Change

BATCH_ROWS = 500  # history rows read per catch-up step (a few ms of SQLite work)
BISECT_FROM = 32  # changes in one revision from which range watchers bisect instead of scan
BATCH_BYTES = 1 << 20  # keys and values per catch-up batch (+ the revision crossing it)


class State(Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    VICTIM = "victim"
    GONE = "gone"


@dataclass(slots=True)
class Batch:
    """What a sink sends as one WatchResponse: whole revisions of one watcher's changes
    (already filtered), or a compaction notice (``compact_revision`` > 0)."""

    watch_id: int
    changes: list[Change]
    revision: int  # the header revision
    compact_revision: int = 0
    next_rev: int = 0  # the watcher's next revision once this batch is accepted

    @property
    def size(self) -> int:
        return len(self.changes)


class Sink(Protocol):
    def offer(self, w: Watcher, b: Batch) -> bool:
        """Queue ``b`` without blocking; False if full (the watcher becomes a victim)."""
        ...

    def changed(self, w: Watcher) -> None:
        """``w`` changed group (synced, or gone after a compaction)."""
        ...


@dataclass(eq=False, slots=True)
class Watcher:
    """One watch: key range (``end``: None = the key alone, b"\\0" = every key >= key,
    else [key, end)), the next revision it is to receive, filters and its sink."""

    id: int
    key: bytes
    end: bytes | None
    next_rev: int
    sink: Sink
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False
    start_rev: int = 0  # as asked (0: from now); progress waits until the hub reaches it
    state: State = State.UNSYNCED
    pending: Batch | None = None
    user: dict[str, object] = field(default_factory=dict)  # the sink's own per-watch data

    def covers(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        if self.end == b"\0":
            return key >= self.key
        return self.key <= key < self.end

    def keep(self, changes: list[Change]) -> list[Change]:
        if not (self.no_put or self.no_delete):
            return changes
        return [c for c in changes if not (c.deleted and self.no_delete)
                and not (not c.deleted and self.no_put)]


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.watchers = Gauge("etcd_debugging_mvcc_watcher_total", "Watchers on this member.",
                              registry=registry)
        self.slow = Gauge("etcd_debugging_mvcc_slow_watcher_total",
                          "Unsynced watchers and victims (behind the current revision).",
                          registry=registry)
        self.pending = Gauge("etcd_debugging_mvcc_pending_events_total",
                             "Events held by victims until their sinks free room.",
                             registry=registry)
        self.queued = Gauge("raftkv_watch_queued_responses",
                            "Watch responses queued in streams, not yet sent.",
                            registry=registry)


class WatchHub:
    def __init__(self, backend: Callable[[], Backend], lock: asyncio.Lock,
                 registry: CollectorRegistry | None = None,
                 batch_rows: int = BATCH_ROWS, batch_bytes: int = BATCH_BYTES) -> None:
        self._backend = backend
        self._lock = lock
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.rev = backend().current_revision()
        self._keys: dict[bytes, set[Watcher]] = {}  # synced single-key watchers
        self._ranges: set[Watcher] = set()  # synced range watchers
        self._unsynced: dict[Watcher, None] = {}  # insertion-ordered
        self._victims: dict[Watcher, None] = {}
        self._count = 0
        self._wake = asyncio.Event()
        self.queued = 0  # responses queued in the sinks (kept by them; a gauge reads it)
        self.metrics = WatchMetrics(registry)
        self.metrics.queued.set_function(lambda: self.queued)

    # --- membership of the groups --------------------------------------------------------

    def watch(self, w: Watcher) -> None:
        """Add ``w`` (``next_rev`` set by the caller: 0 or future = from the next one)."""
        if w.next_rev == 0 or w.next_rev > self.rev:
            w.next_rev = max(w.next_rev, self.rev + 1)
            self._add_synced(w)
        else:
            self._add_unsynced(w)
        self._count += 1
        self._gauges()

    def cancel(self, w: Watcher) -> bool:
        """Remove ``w``; False if it was already gone."""
        if w.state is State.GONE:
            return False
        self._remove(w)
        w.state = State.GONE
        w.pending = None
        self._count -= 1
        self._gauges()
        return True

    def _remove(self, w: Watcher) -> None:
        if w.state is State.SYNCED:
            if w.end is None:
                s = self._keys.get(w.key)
                if s is not None:
                    s.discard(w)
                    if not s:
                        del self._keys[w.key]
            else:
                self._ranges.discard(w)
        elif w.state is State.UNSYNCED:
            self._unsynced.pop(w, None)
        elif w.state is State.VICTIM:
            self._victims.pop(w, None)

    def _add_synced(self, w: Watcher) -> None:
        w.state = State.SYNCED
        if w.end is None:
            self._keys.setdefault(w.key, set()).add(w)
        else:
            self._ranges.add(w)

    def _add_unsynced(self, w: Watcher) -> None:
        w.state = State.UNSYNCED
        self._unsynced[w] = None
        self._wake.set()

    def _regroup(self, w: Watcher) -> None:
        """After a delivered catch-up batch: synced once it reached the head, else unsynced."""
        if w.next_rev > self.rev:
            self._add_synced(w)
            w.sink.changed(w)
        else:
            self._add_unsynced(w)

    def _victimize(self, w: Watcher, b: Batch) -> None:
        self._remove(w)
        w.state = State.VICTIM
        w.pending = b
        self._victims[w] = None
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.watchers.set(self._count)
        self.metrics.slow.set(len(self._unsynced) + len(self._victims))
        self.metrics.pending.set(sum(w.pending.size for w in self._victims if w.pending))

    def stats(self) -> dict[str, int]:
        return {"watchers": self._count, "unsynced": len(self._unsynced),
                "victims": len(self._victims),
                "pending_events": sum(w.pending.size for w in self._victims if w.pending)}

    # --- the apply path ------------------------------------------------------------------

    def notify(self, rev: int, changes: list[Change]) -> None:
        """The changes of applied revision ``rev`` (all of them, in write order)."""
        self.rev = rev
        matched: dict[Watcher, list[Change]] = {}
        for c in changes:
            for w in self._keys.get(c.kv.key, ()):
                matched.setdefault(w, []).append(c)
        if len(changes) <= BISECT_FROM:
            for c in changes:
                for w in self._ranges:
                    if w.covers(c.kv.key):
                        matched.setdefault(w, []).append(c)
        elif self._ranges:
            # a large revision: each range watcher finds its changes by bisection in the
            # changes sorted by key, then takes them back in write order
            order = sorted(range(len(changes)), key=lambda i: changes[i].kv.key)
            keys = [changes[i].kv.key for i in order]
            for w in self._ranges:
                lo = bisect.bisect_left(keys, w.key)
                hi = len(keys) if w.end == b"\0" else bisect.bisect_left(keys, w.end or b"")
                if lo < hi:
                    matched[w] = [changes[i] for i in sorted(order[lo:hi])]
        for w, got in matched.items():
            if w.next_rev > rev:
                continue  # a watch that starts at a future revision
            w.next_rev = rev + 1
            kept = w.keep(got)
            if not kept:
                continue
            b = Batch(w.id, kept, rev, next_rev=rev + 1)
            if not w.sink.offer(w, b):
                self._victimize(w, b)

    def restore(self) -> None:
        """After a snapshot install: every synced watcher catches up from the new backend."""
        for w in [*self._ranges, *(w for s in self._keys.values() for w in s)]:
            self._remove(w)
            w.next_rev = max(w.next_rev, self.rev + 1)
            self._add_unsynced(w)
        self.rev = self._backend().current_revision()
        self._gauges()

    # --- catch-up ----------------------------------------------------------------------

    def wake(self) -> None:
        """Wake the catch-up task (to see that the member stops)."""
        self._wake.set()

    def kick(self) -> None:
        """A sink freed room: victims may be retried."""
        if self._victims:
            self._wake.set()

    async def run(self, stopping: Callable[[], bool]) -> None:
        """The catch-up task: victims first, then unsynced watchers one step each."""
        while not stopping():
            if not self._unsynced:
                self._wake.clear()
                if self._victims:
                    self._retry_victims()
                if not self._unsynced:
                    await self._wake.wait()
                continue
            await self.step()
            await asyncio.sleep(0)

    def _retry_victims(self) -> None:
        for w in list(self._victims):
            b = w.pending
            assert b is not None
            if not w.sink.offer(w, b):
                continue
            self._victims.pop(w)
            w.pending = None
            if b.compact_revision:
                self._gone(w)
                continue
            w.next_rev = b.next_rev
            self._regroup(w)
        self._gauges()

    def _gone(self, w: Watcher) -> None:
        w.state = State.GONE
        self._count -= 1
        w.sink.changed(w)

    async def step(self) -> None:
        """Catch up each unsynced watcher by one batch (victims are retried first)."""
        self._retry_victims()
        for w in list(self._unsynced):
            if w.state is not State.UNSYNCED:
                continue
            async with self._lock:
                b = self._read(w)
            if w.state is not State.UNSYNCED:
                continue  # cancelled while we waited for the lock
            self._deliver(w, b)
            await asyncio.sleep(0)
        self._gauges()

    def _read(self, w: Watcher) -> Batch:
        """The next batch of ``w``'s history (the caller holds the backend lock, so the
        backend is at the hub's revision)."""
        be = self._backend()
        compacted = be.compacted_revision()
        hi = self.rev
        if compacted and w.next_rev < compacted:
            return Batch(w.id, [], hi, compact_revision=compacted)
        lo = max(w.next_rev, 1)
        if lo > hi:  # a future start revision (unsynced by a restore): nothing to read yet
            return Batch(w.id, [], hi, next_rev=w.next_rev)
        changes, nxt = be.history(w.key, w.end, lo, hi, self.batch_rows, w.prev_kv)
        changes, nxt = _cut(changes, nxt, self.batch_bytes)
        return Batch(w.id, w.keep(changes), hi, next_rev=nxt)

    def _deliver(self, w: Watcher, b: Batch) -> None:
        self._unsynced.pop(w, None)
        if not b.changes and not b.compact_revision:
            w.next_rev = max(w.next_rev, b.next_rev)  # nothing in the range: no response
        elif not w.sink.offer(w, b):
            w.state = State.VICTIM
            w.pending = b
            self._victims[w] = None
            return
        elif b.compact_revision:
            self._gone(w)
            return
        else:
            w.next_rev = b.next_rev
        self._regroup(w)


def _cut(changes: list[Change], nxt: int, limit: int) -> tuple[list[Change], int]:
    """Keep whole revisions up to about ``limit`` bytes (at least the first revision);
    returns the changes kept and the revision to continue from."""
    size = 0
    for i, c in enumerate(changes):
        if size > limit and c.kv.mod_revision != changes[i - 1].kv.mod_revision:
            return changes[:i], c.kv.mod_revision
        size += len(c.kv.key) + len(c.kv.value) + (len(c.prev.value) if c.prev else 0)
    return changes, nxt
