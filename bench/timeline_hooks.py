"""Timestamps of one put's steps inside a raftkv member, for ``bench/put_timeline.py``.

Loaded into a member only by the benchmark (a ``sitecustomize`` that imports this module,
on the member's PYTHONPATH, with ``RAFTKV_TIMELINE_DIR`` set), never by the server itself.
It wraps a few class methods before any server object exists, so bound methods taken at
start-up are the wrapped ones. It keeps the events in memory (the loop and worker threads
both add) and writes ``<monotonic ns> <event> <value>`` lines to ``<dir>/<pid>.events``
when the member exits. CLOCK_MONOTONIC is one clock for every process on a host, so the
events of the three members can be put on one time line. Events (value: a Raft index):

- ``put0`` / ``put1``: the KV Put handler starts / returns (value 0);
- ``send_app`` / ``send_resp``: the transport is handed a MsgApp with entries / an
  accepting MsgAppResp; ``recv_app`` / ``recv_resp:<sender>``: the Ready loop is handed one;
- ``wal_call`` / ``wal_back``: the loop hands a synced WAL save to its worker thread / is
  back from it; ``wal_in`` / ``wal_out``: the save starts / ends in the worker;
  ``fsync0`` / ``fsync1``: around the fdatasync itself;
- ``commit``: a Ready with committed entries reaches the Ready loop; ``apply0`` /
  ``apply1``: the apply task starts / ends a batch of entries;
- ``id``: this member's ID (once).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import time
from collections.abc import Callable
from typing import Any

from raftkv.raft import MessageType
from raftkv.server.applytask import ApplyTask
from raftkv.server.readyloop import ReadyLoop
from raftkv.server.services import KVService
from raftkv.server.transport import Transport
from raftkv.server.worker import SerialWorker
from raftkv.storage.fs import OsFile
from raftkv.storage.wal import WAL

_events: list[tuple[int, str, int]] = []  # list.append is atomic: the loop and workers add
_ns = time.monotonic_ns
_told_id = False


def _dump() -> None:
    path = os.path.join(os.environ["RAFTKV_TIMELINE_DIR"], f"{os.getpid()}.events")
    with open(path, "w") as f:
        f.writelines(f"{t} {name} {value}\n" for t, name, value in _events)


atexit.register(_dump)


def ev(name: str, value: int = 0) -> None:
    _events.append((_ns(), name, value))


def _wrap(cls: type, name: str, before: Callable[..., None] | None = None,
          after: Callable[..., None] | None = None) -> None:
    orig = getattr(cls, name)
    if asyncio.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def awrapper(*a: Any, **kw: Any) -> Any:
            if before:
                before(*a, **kw)
            try:
                return await orig(*a, **kw)
            finally:
                if after:
                    after(*a, **kw)
        setattr(cls, name, awrapper)
    else:
        @functools.wraps(orig)
        def wrapper(*a: Any, **kw: Any) -> Any:
            if before:
                before(*a, **kw)
            try:
                return orig(*a, **kw)
            finally:
                if after:
                    after(*a, **kw)
        setattr(cls, name, wrapper)


def _last(entries: list[Any]) -> int:
    return entries[-1].index if entries else 0


def _on_send(t: Transport, msgs: list[Any]) -> None:
    global _told_id
    if not _told_id:
        ev("id", t.member_id)
        _told_id = True
    for m in msgs:
        if m.type is MessageType.APP and m.entries:
            ev("send_app", _last(m.entries))
        elif m.type is MessageType.APP_RESP and not m.reject:
            ev("send_resp", m.index)


def _on_message(_: ReadyLoop, m: Any) -> None:
    if m.type is MessageType.APP and m.entries:
        ev("recv_app", _last(m.entries))
    elif m.type is MessageType.APP_RESP and not m.reject:
        ev(f"recv_resp:{m.sender:x}", m.index)


def _on_ready(_: ReadyLoop, rd: Any) -> None:
    if rd.committed_entries:
        ev("commit", _last(rd.committed_entries))


def _wal_event(name: str) -> Callable[..., None]:
    def stamp(_: SerialWorker, __: Any, func: Callable[..., Any], *args: Any) -> None:
        if getattr(func, "__name__", "") == "save" and len(args) > 1 and args[1]:
            ev(name, _last(args[1]))
    return stamp


_wrap(SerialWorker, "run", _wal_event("wal_call"), _wal_event("wal_back"))
_wrap(KVService, "Put", lambda *a, **k: ev("put0"), lambda *a, **k: ev("put1"))
_wrap(Transport, "send", _on_send)
_wrap(ReadyLoop, "on_message", _on_message)
_wrap(ReadyLoop, "handle_ready", _on_ready)


def _entries_event(name: str) -> Callable[..., None]:
    def stamp(_: WAL, hs: Any, entries: list[Any], *a: Any, **k: Any) -> None:
        if entries:
            ev(name, _last(entries))
    return stamp


_wrap(WAL, "save", _entries_event("wal_in"), _entries_event("wal_out"))
_wrap(OsFile, "fdatasync", lambda *a: ev("fsync0"), lambda *a: ev("fsync1"))
_wrap(ApplyTask, "apply", lambda t, ents: ev("apply0", _last(ents)),
      lambda t, ents: ev("apply1", _last(ents)))
