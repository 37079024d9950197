"""Waiting for a future the Ready loop or the apply task will answer, with a deadline.

``answered`` puts one timer on the future itself: when it fires first, the future fails
with the error the caller names (chosen at that moment, so it can say why). This is
what ``asyncio.wait_for(asyncio.shield(fut), t)`` did, without its task, extra future
and callbacks on every write and every linearizable read.

Invariant: the timer never outlives the wait; an answer that comes after the deadline
finds the future done and is dropped by its producer (which checks ``done()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def answered(fut: asyncio.Future[T], timeout: float,
                   error: Callable[[], BaseException]) -> T:
    def expire() -> None:
        if not fut.done():
            fut.set_exception(error())

    timer = fut.get_loop().call_later(timeout, expire)  # no get_running_loop(): a getpid()
    try:
        return await fut
    finally:
        timer.cancel()
