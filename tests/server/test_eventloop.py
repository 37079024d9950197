"""The member process's event loop (raftkv.server.eventloop): asyncio's by default,
uvloop on request, unknown names refused, and start-up objects frozen."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import uvloop

from raftkv.server import eventloop


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_the_standard_loop_is_the_default() -> None:
    assert eventloop.chosen({}) == "asyncio"
    assert eventloop.chosen({"RAFTKV_EVENT_LOOP": ""}) == "asyncio"
    assert not issubclass(eventloop.run(_loop_type()), uvloop.Loop)


def test_uvloop_on_request() -> None:
    assert eventloop.chosen({"RAFTKV_EVENT_LOOP": "uvloop"}) == "uvloop"
    assert issubclass(eventloop.run(_loop_type(), "uvloop"), uvloop.Loop)


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(eventloop.UnknownLoop, match="expected one of asyncio, uvloop"):
        eventloop.chosen({"RAFTKV_EVENT_LOOP": "tokio"})


def test_settle_freezes_what_is_alive_and_collects_the_rest() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    kept = [object() for _ in range(10)]
    garbage = weakref.ref(Cycle())  # only the collector frees a cycle
    before = gc.get_freeze_count()
    try:
        eventloop.settle()
        assert gc.get_freeze_count() >= before + len(kept)
        assert garbage() is None
    finally:
        gc.unfreeze()
