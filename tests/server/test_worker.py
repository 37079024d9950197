"""The Ready loop's WAL worker (raftkv.server.worker): calls run one at a time on its own
thread in submission order, results and exceptions come back to the asking coroutine, a
cancelled caller's call still completes, and close waits for what was submitted."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from raftkv.server.worker import SerialWorker


def test_calls_run_in_order_on_one_thread_and_answer_their_callers() -> None:
    w = SerialWorker("test-worker")
    seen: list[tuple[int, str]] = []
    active = [0]

    def call(i: int) -> int:
        active[0] += 1
        assert active[0] == 1, "two calls at once"
        time.sleep(0.001 * (i % 3))  # uneven lengths: order must not follow them
        seen.append((i, threading.current_thread().name))
        active[0] -= 1
        return i * i

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(w.run(loop, call, i) for i in range(30)))

    try:
        assert asyncio.run(main()) == [i * i for i in range(30)]
        assert [i for i, _ in seen] == list(range(30))
        assert {name for _, name in seen} == {"test-worker"}
    finally:
        w.close()


def test_an_exception_reaches_the_caller_and_the_worker_goes_on() -> None:
    w = SerialWorker("test-worker")

    def fail() -> None:
        raise OSError(5, "I/O error")

    async def main() -> int:
        with pytest.raises(OSError, match="I/O error"):
            await w.run(asyncio.get_running_loop(), fail)
        return await w.run(asyncio.get_running_loop(), lambda: 7)

    try:
        assert asyncio.run(main()) == 7
    finally:
        w.close()


def test_a_cancelled_caller_leaves_its_call_to_complete_and_close_waits_for_it() -> None:
    w = SerialWorker("test-worker")
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(10)
        done.append("slow")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(w.run(loop, slow))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        queued = asyncio.ensure_future(w.run(loop, done.append, "queued"))
        await asyncio.sleep(0)  # let it submit; asyncio.run cancels it at the end
        assert not queued.done()

    asyncio.run(main())  # the loop is gone before the calls answer: nothing may break
    closer = threading.Thread(target=w.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and done == []  # close waits for the call in flight
    release.set()
    closer.join(10)
    assert not closer.is_alive() and done == ["slow", "queued"]

    async def late() -> None:
        await w.run(asyncio.get_running_loop(), lambda: None)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(late())
