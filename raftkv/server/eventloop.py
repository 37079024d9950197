"""How a member process runs: on the standard asyncio loop (uvloop on request), with the
start-up objects out of the collector's way.

Job: ``run`` drives the member's main coroutine (the ``raftkv`` command) on asyncio's own
loop, or on uvloop (libuv's loop behind asyncio's interface) when ``RAFTKV_EVENT_LOOP=uvloop``
asks for it; ``settle``, called once the member serves, moves every object alive then
(modules, protobuf descriptors, the recovered state) into the collector's permanent
generation (``gc.freeze``), so no later collection walks them.

Why uvloop is not the default (issue 14, ``bench/results/event-loop.md``): on the 2-core
box it gave 7-11% lower one-client p50 and about 9% less CPU per write at 256 clients,
but with members on uvloop the history harness's fault campaigns failed: uvloop raises
RuntimeError on a write to a connection the far end reset, which ended a peer stream task
for good (fixed: ``transport.put``; the ten failed campaigns then pass on uvloop). It
becomes the default once the whole suite has run on it; until then it serves
``bench/event_loop.py``. The freeze halves the pause of each full collection (17-35 ms
without it, 7-17 ms with it, measured with ``gc.callbacks``, a few per member per
benchmark run); its effect on throughput was within the noise of three interleaved rounds.

Invariants: an unknown loop name is refused before anything starts; an embedding program
(``raftkv.server.embed``) keeps its own loop; ``settle`` runs once, after start-up, and
frees nothing (frozen objects stay alive as they would).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

EVENT_LOOP_ENV = "RAFTKV_EVENT_LOOP"
LOOPS = ("asyncio", "uvloop")  # the first is the default


class UnknownLoop(ValueError):
    pass


def chosen(environ: Mapping[str, str]) -> str:
    """The loop the environment asks for: asyncio's unless ``RAFTKV_EVENT_LOOP`` says uvloop."""
    name = environ.get(EVENT_LOOP_ENV) or LOOPS[0]
    if name not in LOOPS:
        raise UnknownLoop(f"{EVENT_LOOP_ENV}={name!r}: expected one of {', '.join(LOOPS)}")
    return name


def run(main: Coroutine[Any, Any, T], loop: str = LOOPS[0]) -> T:
    """Run ``main`` to completion on a new event loop of the kind named (as asyncio.run)."""
    if loop == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)


def settle() -> None:
    """The member serves: collect what start-up left behind, then freeze the rest."""
    gc.collect()
    gc.freeze()
