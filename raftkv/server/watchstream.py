"""One gRPC Watch stream's state: its watchers, its bounded send queue, its requests.

Job: turn WatchRequests into hub watchers (create, cancel, progress) with etcd 3.6's
semantics and replies (server/etcdserver/api/v3rpc/watch.go), and be the hub's ``Sink``
for them: batches are queued in order with the control replies (created, canceled,
progress) and turned into WatchResponses (prev_kv, fragments) when sent.

Invariants:
- Order: the created reply of a watch precedes its events; a cancel reply follows every
  event queued before it; a progress reply (watch_id -1) is queued only when every
  watcher of the stream is synced (else deferred until they are), so its revision
  promises that every event at or below it was queued before it.
- Memory: at most ``QUEUE`` event batches are queued per stream (``offer`` refuses more:
  the watcher becomes a hub victim); control replies are not bounded by it, but the
  request reader waits while more than ``QUEUE`` of them are unsent, so a client that
  does not read cannot make the stream grow without bound.
- Every field is checked; a request that cannot be honoured gets a created-and-canceled
  reply with a reason, as etcd's, and never fails the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator

from aetcd.rpc import kv_pb2, rpc_pb2

from raftkv.mvcc import kv
from raftkv.mvcc.watch import Batch, State, Watcher, WatchHub
from raftkv.storage.backend import Change

QUEUE = 128  # event batches queued per stream (etcd's chanBufLen)
GRPC_OVERHEAD = 512 * 1024  # etcd's grpcOverheadBytes, added to the fragment limit

ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_NEGATIVE_REV = "etcdserver: mvcc: required revision has been compacted"  # etcd 3.6's

Header = Callable[[int], rpc_pb2.ResponseHeader]
# (key, range_end) -> None if the caller may watch it, else the cancel reason (auth)
Permit = Callable[[bytes, bytes], str | None]


def _anyone(key: bytes, range_end: bytes) -> None:
    return None


class WatchStream:
    """The hub's sink for the watchers of one stream."""

    def __init__(self, hub: WatchHub, header: Header, max_request_bytes: int,
                 events: EventCache | None = None, permit: Permit = _anyone) -> None:
        self.hub = hub
        self.permit = permit
        self.events = events or EventCache()
        self.header = header
        self.frag_limit = max_request_bytes + GRPC_OVERHEAD
        self.watchers: dict[int, Watcher] = {}
        self.progress_notify: set[int] = set()
        self.fragment: set[int] = set()
        self._next_id = 0
        self._q: deque[tuple[Watcher, Batch] | rpc_pb2.WatchResponse] = deque()
        self._batches = 0
        self._ctrl = 0
        self._refused = False
        self._deferred_progress = False
        self.ready = asyncio.Event()
        self.ctrl_room = asyncio.Event()
        self.ctrl_room.set()
        self.sent_since_tick: set[int] = set()

    # --- the Sink protocol ---------------------------------------------------------------

    def offer(self, w: Watcher, b: Batch) -> bool:
        if w.state is State.GONE and w.id not in self.watchers:
            return True  # cancelled meanwhile: drop silently
        if self._batches >= QUEUE:
            self._refused = True
            return False
        self._q.append((w, b))
        self._batches += 1
        self.hub.queued += 1
        self.ready.set()
        return True

    def changed(self, w: Watcher) -> None:
        # a compacted watcher (GONE) stays registered until the client cancels it, as
        # etcd's: clientv3 then sends a cancel, answered like any other
        if self._deferred_progress:
            self._maybe_progress()

    # --- requests ------------------------------------------------------------------------

    def handle(self, req: rpc_pb2.WatchRequest) -> None:
        which = req.WhichOneof("request_union")
        if which == "create_request":
            self._create(req.create_request)
        elif which == "cancel_request":
            self._cancel(req.cancel_request.watch_id)
        elif which == "progress_request" and not self._deferred_progress:
            self._deferred_progress = True
            self._maybe_progress()
        # an empty request (no union set) is ignored, as etcd's

    def _create(self, c: rpc_pb2.WatchCreateRequest) -> None:
        key = c.key or b"\0"  # etcd: an empty key is the smallest key
        end: bytes | None = c.range_end or None
        wsrev = self.hub.rev
        err = None
        if c.start_revision < 0:
            err = ERR_NEGATIVE_REV
        elif (refusal := self.permit(key, c.range_end)) is not None:
            err = refusal  # etcd's isWatchPermitted, before the range is looked at
        elif end is not None and end != b"\0" and key >= end:
            err = ERR_EMPTY_RANGE
        elif c.watch_id != 0 and c.watch_id in self.watchers:
            err = ERR_DUPLICATE_ID
        if err is not None:
            self.ctrl(rpc_pb2.WatchResponse(header=self.header(wsrev), watch_id=-1,
                                            created=True, canceled=True, cancel_reason=err))
            return
        wid = c.watch_id or self._auto_id()
        filters = set(c.filters)
        w = Watcher(wid, key, end, c.start_revision if c.start_revision else wsrev + 1, self,
                    no_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
                    no_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters,
                    prev_kv=c.prev_kv, start_rev=c.start_revision)
        self.watchers[wid] = w
        if c.progress_notify:
            self.progress_notify.add(wid)
        if c.fragment:
            self.fragment.add(wid)
        # created first, then the hub may queue events for it
        self.ctrl(rpc_pb2.WatchResponse(header=self.header(wsrev), watch_id=wid,
                                        created=True))
        self.hub.watch(w)

    def _auto_id(self) -> int:
        while self._next_id in self.watchers:
            self._next_id += 1
        wid = self._next_id
        self._next_id += 1
        return wid

    def _cancel(self, wid: int) -> None:
        w = self.watchers.get(wid)
        if w is None:
            return  # etcd ignores a cancel of an unknown watch
        self.hub.cancel(w)
        self._forget(wid)
        self.ctrl(rpc_pb2.WatchResponse(header=self.header(self.hub.rev), watch_id=wid,
                                        canceled=True))
        if self._deferred_progress:
            self._maybe_progress()

    def _forget(self, wid: int) -> None:
        self.watchers.pop(wid, None)
        self.progress_notify.discard(wid)
        self.fragment.discard(wid)

    def _progress_ok(self, w: Watcher) -> bool:
        """etcd 3.6's progressIfSync: synced, and not waiting for a future start revision
        (a progress revision below it would tell the client too little)."""
        return w.state is State.SYNCED and self.hub.rev >= w.start_rev

    def _maybe_progress(self) -> None:
        if all(self._progress_ok(w) for w in self.watchers.values()):
            self._deferred_progress = False
            if self.watchers:  # as etcd: no watcher, no reply
                self.ctrl(rpc_pb2.WatchResponse(header=self.header(self.hub.rev),
                                                watch_id=-1))

    def tick_progress(self) -> None:
        """The periodic progress notification: a synced progress_notify watcher that was
        sent nothing since the last tick gets an empty response at the hub's revision."""
        for wid in list(self.progress_notify):
            w = self.watchers.get(wid)
            if w is not None and self._progress_ok(w) and wid not in self.sent_since_tick:
                self.offer(w, Batch(wid, [], self.hub.rev, next_rev=w.next_rev))
        self.sent_since_tick.clear()

    def ctrl(self, resp: rpc_pb2.WatchResponse) -> None:
        self._q.append(resp)
        self._ctrl += 1
        self.hub.queued += 1
        if self._ctrl >= QUEUE:
            self.ctrl_room.clear()
        self.ready.set()

    def close(self) -> None:
        for w in list(self.watchers.values()):
            self.hub.cancel(w)
        self.watchers.clear()
        self.hub.queued -= len(self._q)
        self._q.clear()

    def queued(self) -> int:
        return len(self._q)

    # --- sending -------------------------------------------------------------------------

    def take(self) -> list[rpc_pb2.WatchResponse]:
        """The next queued item as responses (several if fragmented); [] if none."""
        if not self._q:
            self.ready.clear()
            return []
        item = self._q.popleft()
        self.hub.queued -= 1
        if isinstance(item, rpc_pb2.WatchResponse):
            self._ctrl -= 1
            if self._ctrl < QUEUE:
                self.ctrl_room.set()
            return [item]
        self._batches -= 1
        if self._refused:
            self._refused = False
            self.hub.kick()
        w, b = item
        if self.watchers.get(w.id) is not w and not b.compact_revision:
            return []  # cancelled after it was queued
        if b.changes:  # as etcd: only events elide the next progress notification
            self.sent_since_tick.add(w.id)
            if self._deferred_progress:
                self._maybe_progress()  # a future start revision may have been reached
        return list(self._responses(w, b))

    def _responses(self, w: Watcher, b: Batch) -> Iterator[rpc_pb2.WatchResponse]:
        if b.compact_revision:  # header revision 0, as etcd's
            yield rpc_pb2.WatchResponse(header=self.header(0), watch_id=w.id,
                                        canceled=True, compact_revision=b.compact_revision)
            return
        events = [self.events.get(c, w.prev_kv) for c in b.changes]
        resp = rpc_pb2.WatchResponse(header=self.header(b.revision), watch_id=w.id,
                                     events=events)
        if w.id not in self.fragment or len(events) < 2 or resp.ByteSize() < self.frag_limit:
            yield resp
            return
        yield from self._fragments(w.id, b.revision, events)

    def _fragments(self, wid: int, rev: int,
                   events: list[kv_pb2.Event]) -> Iterator[rpc_pb2.WatchResponse]:
        part: list[kv_pb2.Event] = []
        size = 0
        for ev in events:
            n = ev.ByteSize() + 8
            if part and size + n > self.frag_limit:
                yield rpc_pb2.WatchResponse(header=self.header(rev), watch_id=wid,
                                            events=part, fragment=True)
                part, size = [], 0
            part.append(ev)
            size += n
        yield rpc_pb2.WatchResponse(header=self.header(rev), watch_id=wid, events=part)


class EventCache:
    """Encoded events shared by every watcher that gets the same change (one encoding
    per change, not per watcher); bounded, cleared when full. Keyed by identity, with
    the change itself kept so a reused id() never matches."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._d: dict[tuple[int, bool], tuple[Change, kv_pb2.Event]] = {}

    def get(self, c: Change, prev_kv: bool) -> kv_pb2.Event:
        k = (id(c), prev_kv and c.prev is not None)
        hit = self._d.get(k)
        if hit is not None and hit[0] is c:
            return hit[1]
        if len(self._d) >= self.LIMIT:
            self._d.clear()
        ev = event_pb(c, prev_kv)
        self._d[k] = (c, ev)
        return ev


def event_pb(c: Change, prev_kv: bool) -> kv_pb2.Event:
    ev = kv_pb2.Event(type=kv_pb2.Event.DELETE if c.deleted else kv_pb2.Event.PUT,
                      kv=kv.to_pb(c.kv))
    if prev_kv and c.prev is not None:
        ev.prev_kv.CopyFrom(kv.to_pb(c.prev))
    return ev
