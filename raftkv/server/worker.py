"""A thread of its own for the Ready loop's synced WAL writes.

Job: run blocking calls one at a time, in the order they were submitted, and hand each
result (or exception) back to the event loop that asked. It replaces
``asyncio.to_thread`` on the one call every write makes on every member, at about a
third of its CPU per call: no executor bookkeeping, context copy or chained futures
(a no-op round trip: 170-190 us of CPU by ``asyncio.to_thread``, 52-53 us here, on the
2-core VM; DESIGN.md).

Invariants: calls run in submission order on one thread, never two at once; a result
reaches its future only through the asking loop's ``call_soon_threadsafe``, and a future
cancelled meanwhile (its task was) is left alone while the call itself still completes,
as with ``to_thread``; ``close`` lets the call in flight and those queued finish, then
ends and joins the thread, so nothing the worker runs outlives it (the WAL is closed
after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]",
              asyncio.AbstractEventLoop]


class SerialWorker:
    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T],
                  *args: Any) -> T:
        """``fn(*args)`` on the worker's thread, after every call submitted before it,
        answered on ``loop``: the caller's own (passed in, as the hot paths do not ask
        asyncio for it: that is a getpid() per call)."""
        if self._closed:
            raise RuntimeError(f"{self._thread.name} is closed")
        fut: asyncio.Future[T] = loop.create_future()
        self._calls.put((fn, args, fut, loop))
        return await fut

    def close(self) -> None:
        """Finish the calls submitted so far, then end the thread (joined)."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args, fut, loop = call
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller, whatever it is
                self._settle(loop, fut, None, exc)
            else:
                self._settle(loop, fut, result, None)

    @staticmethod
    def _settle(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any,
                exc: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(_settle, fut, result, exc)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return  # cancelled while the call ran
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
