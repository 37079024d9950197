"""How a member process runs: on uvloop, with the start-up objects out of the collector's way.

Job: ``run`` drives the member's main coroutine (the ``raftkv`` command) on uvloop,
libuv's event loop behind asyncio's interface, or on the standard library's loop when
``RAFTKV_EVENT_LOOP=asyncio`` asks for it (for comparison: ``bench/event_loop.py``, and a
way out should uvloop misbehave somewhere); ``settle``, called once the member serves,
moves every object alive then (modules, protobuf descriptors, the recovered state) into
the collector's permanent generation (``gc.freeze``), so no later collection walks them.

Why (issue 14, ``bench/results/event-loop.md``): on the 2-core box, interleaved rounds of
a 3-member cluster under etcd's benchmark gave uvloop 7-11% lower one-client p50 and
about 9% less CPU per write at 256 clients than the standard loop. The freeze halves the
pause of each full collection (17-35 ms without it, 7-17 ms with it, measured with
``gc.callbacks``, a few per member per benchmark run); its effect on throughput was
within the noise of three interleaved rounds.

Invariants: the member behaves the same on either loop (the suite runs members through
the ``raftkv`` command, so on uvloop); an unknown loop name is refused before anything
starts; an embedding program (``raftkv.server.embed``) keeps its own loop; ``settle``
runs once, after start-up, and frees nothing (frozen objects stay alive as they would).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

EVENT_LOOP_ENV = "RAFTKV_EVENT_LOOP"
LOOPS = ("uvloop", "asyncio")


class UnknownLoop(ValueError):
    pass


def chosen(environ: Mapping[str, str]) -> str:
    """The loop the environment asks for: uvloop unless ``RAFTKV_EVENT_LOOP`` says asyncio."""
    name = environ.get(EVENT_LOOP_ENV) or LOOPS[0]
    if name not in LOOPS:
        raise UnknownLoop(f"{EVENT_LOOP_ENV}={name!r}: expected one of {', '.join(LOOPS)}")
    return name


def run(main: Coroutine[Any, Any, T], loop: str = LOOPS[0]) -> T:
    """Run ``main`` to completion on a new event loop of the kind named (as asyncio.run)."""
    if loop == "asyncio":
        return asyncio.run(main)
    return uvloop.run(main)


def settle() -> None:
    """The member serves: collect what start-up left behind, then freeze the rest."""
    gc.collect()
    gc.freeze()
