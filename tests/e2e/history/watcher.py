"""Watchers that record every response while the workload and the nemesis run.

Each :class:`Watcher` holds one :class:`WatchLog` over the workload's prefix. It opens a
Watch stream on its endpoint, records every response as it arrives, and when the stream
breaks (member killed, paused, cut off) moves to the next endpoint and resumes at the
last observed revision + 1, as etcd's clients do. Nothing is filtered or reordered here:
the checker (``watch_check``) judges exactly what arrived.

A watcher made with ``cycle`` closes each stream after that many seconds and resumes on
the next member after a short gap, so resumption and history catch-up are exercised in
every run, whatever the fault. A watcher made with ``require_leader`` sends etcd's
``hasleader`` metadata (clientv3's WithRequireLeader, as kube-apiserver does): a member
cut off from its leader ends the stream, so the watcher resumes on a member that went
ahead, through history catch-up.

Invariants: one stream per watcher at a time; ``resume`` is ``last event revision + 1``
(or the original start before any event); a compacted cancel resumes at the compaction
revision, recorded so the checker excuses only that range; ``stop`` ends every stream
(``await Watcher.run`` returns only after its channel is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
from aetcd import rpc

from tests.e2e.history import etcdapi
from tests.e2e.history.watchlog import Event, Segment, WatchLog, WatchResp

CYCLED = "closed by the client (cycle)"
CYCLE_GAP = 0.3  # seconds between a cycled stream and the next one


def _event(ev: rpc.Event, with_prev: bool) -> Event:
    kind = "put" if ev.type == rpc.Event.EventType.PUT else "del"
    prev = etcdapi.to_kv(ev.prev_kv) if with_prev and ev.HasField("prev_kv") else None
    return Event(kind, etcdapi.to_kv(ev.kv), prev)


class Watcher:
    def __init__(self, wid: int, endpoints: list[str], first: int, prefix: str,
                 start_revision: int, prev_kv: bool, require_leader: bool = False,
                 cycle: float = 0.0) -> None:
        end = etcdapi.prefix_end(prefix.encode()).decode()
        self.log = WatchLog(wid, prefix, end, prev_kv)
        self.endpoints = endpoints
        self.require_leader = require_leader  # etcd's WithRequireLeader ("hasleader")
        self.cycle = cycle  # > 0: close each stream after this long, resume elsewhere
        self._ep = first % len(endpoints)
        self.resume = start_revision
        self.last_event = 0
        self.created = asyncio.Event()  # the first stream is in place

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            endpoint = self.endpoints[self._ep]
            seg = Segment(endpoint, self.resume)
            self.log.segments.append(seg)
            ch = etcdapi.channel(endpoint)
            try:
                await self._stream(ch, seg, stop)
            except (grpc.aio.AioRpcError, OSError, EOFError) as exc:
                seg.error = etcdapi.classify(exc)[1]
            finally:
                await ch.close()
            if not stop.is_set():
                self._ep = (self._ep + 1) % len(self.endpoints)
                # back off before reconnecting; after a cycle, long enough for writes to
                # land meanwhile, so the next stream starts with a history catch-up
                gap = CYCLE_GAP if seg.error == CYCLED else 0.1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), gap)

    async def _stream(self, ch: grpc.aio.Channel, seg: Segment, stop: asyncio.Event) -> None:
        create = rpc.WatchCreateRequest(key=self.log.key.encode(),
                                        range_end=self.log.range_end.encode(),
                                        start_revision=seg.start_revision,
                                        prev_kv=self.log.prev_kv)
        done = asyncio.Event()

        async def requests() -> AsyncIterator[rpc.WatchRequest]:
            yield rpc.WatchRequest(create_request=create)
            await done.wait()

        md = (("hasleader", "true"),) if self.require_leader else None
        call = rpc.WatchStub(ch).Watch(requests(), metadata=md)
        stopper = asyncio.create_task(stop.wait())
        loop = asyncio.get_running_loop()
        until = loop.time() + self.cycle if self.cycle else None
        try:
            while True:
                reader = asyncio.ensure_future(call.read())
                left = None if until is None else max(0.0, until - loop.time())
                await asyncio.wait({reader, stopper}, timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    reader.cancel()
                    if not stopper.done():
                        seg.error = CYCLED
                    return
                resp = reader.result()
                if resp is grpc.aio.EOF:
                    seg.error = "stream ended"
                    return
                if self._record(seg, resp):
                    return
        finally:
            done.set()
            stopper.cancel()
            call.cancel()

    def _record(self, seg: Segment, resp: rpc.WatchResponse) -> bool:
        """Keep one response; True when the server cancelled the watch."""
        r = WatchResp(resp.header.revision, [_event(e, self.log.prev_kv) for e in resp.events],
                      resp.created, resp.canceled, resp.compact_revision, resp.cancel_reason)
        seg.responses.append(r)
        if resp.created:
            seg.created_revision = resp.header.revision
            if not self.resume:  # "now": later streams continue after the created revision
                self.resume = resp.header.revision + 1
            self.created.set()
        for ev in r.events:
            self.last_event = max(self.last_event, ev.revision)
            self.resume = self.last_event + 1
        if resp.canceled:
            if resp.compact_revision:
                self.resume = resp.compact_revision
            seg.error = f"cancelled: {resp.cancel_reason or 'compacted'}"
            return True
        return False


async def watch_all(watchers: list[Watcher], stop: asyncio.Event) -> None:
    await asyncio.gather(*(w.run(stop) for w in watchers))


async def caught_up(watchers: list[Watcher], revision: int, timeout: float) -> None:
    """Wait (bounded) until every watcher is past ``revision`` (delivered it, or was created
    at or after it); stragglers are judged by the checker (``stalled``), so a timeout here
    is not an error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(w.resume <= revision for w in watchers) and loop.time() < deadline:
        await asyncio.sleep(0.05)  # polling the recorded streams, nothing to wait on
