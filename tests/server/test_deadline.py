"""``answered``: the producer's answer wins before the deadline; after it the future fails
with the error named then, so a late answer finds it done."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.server.deadline import answered


async def test_an_answer_before_the_deadline_is_returned() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, 7)
    assert await answered(fut, 60, lambda: RuntimeError("late")) == 7


async def test_the_deadline_fails_it_with_the_error_named_then() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    why = ["first"]

    def error() -> BaseException:
        return RuntimeError(why[0])

    why[0] = "at expiry"
    with pytest.raises(RuntimeError, match="at expiry"):
        await answered(fut, 0.01, error)
    assert fut.done() and not fut.cancelled()  # a late producer sees done() and drops it
