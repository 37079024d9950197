"""The ReadIndex waiters on their own (no Raft, no running loop): batching into rounds,
serving at the read index, retry under a new context, and nothing kept for a waiter
that gave up."""

from __future__ import annotations

import asyncio

from raftkv.server.waiters import ReadIndexQueue


def test_rounds_serve_at_the_read_index_and_forget_who_gave_up() -> None:
    loop = asyncio.new_event_loop()
    try:
        q = ReadIndexQueue(0xABC)
        a, b, gone = (loop.create_future() for _ in range(3))
        for f in (a, b, gone):
            q.enqueue(f)
        ctx = q.start(now=0.0)
        assert ctx is not None and ctx[:8] == (0xABC).to_bytes(8, "big")
        assert q.start(now=0.0) is None  # nothing queued since
        q.discard(gone)
        assert q.pending() == 2
        q.on_read_state(ctx, 7)
        q.serve(6)
        assert not a.done()
        q.serve(7)
        assert a.done() and b.done() and gone.cancelled() and q.pending() == 0
    finally:
        loop.close()


def test_a_lost_round_is_asked_again_under_a_new_context() -> None:
    loop = asyncio.new_event_loop()
    try:
        q = ReadIndexQueue(1)
        f, gone = loop.create_future(), loop.create_future()
        q.enqueue(f)
        first = q.start(now=0.0)
        q.retry(now=1.0, limit=2.0)
        assert not q.has_queued()
        q.retry(now=3.0, limit=2.0)  # lost (a leader change): back to the queue
        assert q.has_queued()
        second = q.start(now=3.0)
        assert second is not None and second != first
        q.on_read_state(first, 1)  # a late answer to the old context changes nothing
        q.serve(10)
        assert not f.done()
        q.enqueue(gone)
        third = q.start(now=4.0)
        q.discard(gone)
        q.retry(now=4.0, limit=2.0)  # every waiter of that round gave up: forgotten
        q.on_read_state(third, 1)  # type: ignore[arg-type]
        assert q.pending() == 1
    finally:
        loop.close()
