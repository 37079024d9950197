"""Linearizable reads by ReadIndex: who waits, under which context, for which index.

``ReadIndexQueue`` knows nothing of Raft or of the loop's timing beyond the clock values
it is given, so it is tested on its own. Its life cycle, as etcd's linearizable reads:

1. ``enqueue`` a waiter (a future); every waiter queued before the next round shares it;
2. ``start`` a round: one context, unique across members and restarts (``read_context``),
   for all queued waiters; the caller hands it to Raft's ReadIndex;
3. ``on_read_state`` when Raft answers a context with a read index;
4. ``serve(applied)`` resolves the waiters whose read index is applied;
5. ``retry`` asks again (new context) for rounds lost to a leader change, and forgets
   rounds whose every waiter gave up.

Invariant: a waiter that timed out or was cancelled (``discard``) is held by nothing, so
waiting reads without a leader cannot pile up; ``pending`` counts the live ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from raftkv.mvcc.commands import RequestIDs


def read_context(member_id: int, n: int) -> bytes:
    """A ReadIndex context unique across members (the member ID) and restarts (``n`` comes
    from a RequestIDs, which starts at the wall clock)."""
    return member_id.to_bytes(8, "big") + n.to_bytes(8, "big")


@dataclass
class _Round:
    waiters: list[asyncio.Future[None]]
    sent_at: float


class ReadIndexQueue:
    def __init__(self, member_id: int) -> None:
        self.member_id = member_id
        self._ids = RequestIDs()
        self._queue: list[asyncio.Future[None]] = []
        self._inflight: dict[bytes, _Round] = {}
        self._ready: list[tuple[int, list[asyncio.Future[None]]]] = []

    def enqueue(self, fut: asyncio.Future[None]) -> None:
        self._queue.append(fut)

    def discard(self, fut: asyncio.Future[None]) -> None:
        """A waiter gave up: cancel it and drop it from the queue."""
        if not fut.done():
            fut.cancel()
        if fut in self._queue:
            self._queue.remove(fut)

    def has_queued(self) -> bool:
        return bool(self._queue)

    def start(self, now: float) -> bytes | None:
        """Begin a round for every queued waiter; returns its context (None: none queued)."""
        waiters = [w for w in self._queue if not w.done()]
        self._queue = []
        if not waiters:
            return None
        ctx = read_context(self.member_id, self._ids.next())
        self._inflight[ctx] = _Round(waiters, now)
        return ctx

    def on_read_state(self, ctx: bytes, index: int) -> None:
        r = self._inflight.pop(ctx, None)
        if r is not None:
            self._ready.append((index, r.waiters))

    def serve(self, applied: int) -> None:
        keep = []
        for index, waiters in self._ready:
            if index <= applied:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            else:
                keep.append((index, waiters))
        self._ready = keep

    def retry(self, now: float, limit: float) -> None:
        """Rounds older than ``limit`` seconds are asked again under a new context."""
        for ctx, r in list(self._inflight.items()):
            if all(w.done() for w in r.waiters):
                del self._inflight[ctx]  # every reader gave up
            elif now - r.sent_at > limit:
                del self._inflight[ctx]
                self._queue.extend(w for w in r.waiters if not w.done())

    def pending(self) -> int:
        n = sum(1 for w in self._queue if not w.done())
        n += sum(1 for r in self._inflight.values() for w in r.waiters if not w.done())
        n += sum(1 for _, ws in self._ready for w in ws if not w.done())
        return n

    def fail_all(self, exc: BaseException) -> None:
        for w in [*self._queue, *(w for r in self._inflight.values() for w in r.waiters),
                  *(w for _, ws in self._ready for w in ws)]:
            if not w.done():
                w.set_exception(exc)
