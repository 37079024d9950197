"""One Watch stream's request handling and replies, without gRPC: created/canceled
replies and etcd's errors, auto and client-chosen IDs, progress requests withheld while a
watcher is unsynced, periodic progress, prev_kv, fragments, the queue bound."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aetcd.rpc import rpc_pb2

from raftkv.mvcc.watch import WatchHub
from raftkv.server import watchstream
from raftkv.server.watchstream import WatchStream
from raftkv.storage.backend import Backend

pb = rpc_pb2


class Env:
    def __init__(self, tmp: Path, max_request_bytes: int = 1 << 20) -> None:
        self.be = Backend.open(tmp / "db", initial_revision=1)
        self.hub = WatchHub(lambda: self.be, asyncio.Lock(), batch_rows=5)
        self.st = WatchStream(self.hub, lambda rev: pb.ResponseHeader(revision=rev),
                              max_request_bytes)
        self.ci = 0

    def put(self, key: bytes, value: bytes = b"v") -> int:
        self.ci += 1
        with self.be.write_txn() as w:
            w.put(key, value)
            w.end(self.ci)
        self.hub.notify(w.rev, w.changes_made)
        return w.rev

    def create(self, key: bytes, **kw: object) -> None:
        self.st.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, **kw)))

    def out(self) -> list[rpc_pb2.WatchResponse]:
        got = []
        while self.st.queued():
            got += self.st.take()
        return got


def test_created_ids_and_errors(tmp_path: Path) -> None:
    e = Env(tmp_path)
    e.create(b"a")
    e.create(b"b", watch_id=7)
    e.create(b"c", watch_id=7)
    e.create(b"d")
    e.create(b"z", range_end=b"a")
    e.create(b"x", watch_id=-5)  # accepted, as etcd 3.6.16 does
    e.create(b"n", start_revision=-2)
    e.st.handle(pb.WatchRequest())  # nothing set: ignored
    got = e.out()
    assert [(r.watch_id, r.created, r.canceled, r.cancel_reason) for r in got] == [
        (0, True, False, ""), (7, True, False, ""),
        (-1, True, True, watchstream.ERR_DUPLICATE_ID), (1, True, False, ""),
        (-1, True, True, watchstream.ERR_EMPTY_RANGE), (-5, True, False, ""),
        (-1, True, True, watchstream.ERR_NEGATIVE_REV)]
    assert all(r.header.revision == 1 for r in got)
    e.st.handle(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=7)))
    e.st.handle(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=99)))
    e.put(b"b")
    assert [(r.watch_id, r.canceled, len(r.events)) for r in e.out()] == [(7, True, 0)]
    e.put(b"a")
    assert [(r.watch_id, [ev.kv.key for ev in r.events]) for r in e.out()] == [(0, [b"a"])]
    e.be.close()


def test_progress_request_withheld_until_every_watcher_is_synced(tmp_path: Path) -> None:
    e = Env(tmp_path)
    for i in range(20):
        e.put(b"k", str(i).encode())
    e.create(b"k")  # synced
    e.create(b"k", start_revision=2)  # unsynced: 20 revisions behind, batches of 5
    e.out()
    e.st.handle(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
    assert e.out() == [], "a progress reply while a watcher is behind"
    asyncio.run(e.hub.step())
    assert all(r.watch_id == 1 for r in e.out()), "still behind after one batch"
    for _ in range(5):
        asyncio.run(e.hub.step())
    got = e.out()
    assert got[-1].watch_id == -1 and got[-1].header.revision == 21 and not got[-1].events
    caught = [ev.kv.mod_revision for r in got[:-1] for ev in r.events]
    assert caught == list(range(7, 22))  # the first batch held 2..6
    # synced now: answered at once
    e.st.handle(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
    assert [(r.watch_id, r.header.revision) for r in e.out()] == [(-1, 21)]
    e.be.close()


def test_periodic_progress_only_to_idle_synced_watchers_that_asked(tmp_path: Path) -> None:
    e = Env(tmp_path)
    e.create(b"a", progress_notify=True)
    e.create(b"b", progress_notify=True)
    e.create(b"c")
    e.out()
    e.put(b"a")
    assert len(e.out()) == 1
    e.st.tick_progress()
    assert [(r.watch_id, r.header.revision, len(r.events)) for r in e.out()] == [(1, 2, 0)]
    e.st.tick_progress()
    assert sorted(r.watch_id for r in e.out()) == [0, 1]
    e.be.close()


def test_prev_kv_and_fragments(tmp_path: Path) -> None:
    e = Env(tmp_path, max_request_bytes=1)
    e.put(b"k1", b"old")
    e.create(b"k", range_end=b"l", prev_kv=True, fragment=True)
    e.create(b"k", range_end=b"l")
    e.out()
    e.ci += 1
    with e.be.write_txn() as w:
        for i in range(4):
            w.put(f"k{i}".encode(), b"x" * 1000)
        w.end(e.ci)
    e.hub.notify(w.rev, w.changes_made)
    e.st.frag_limit = 2500  # two events per fragment
    got = e.out()
    frag = [r for r in got if r.watch_id == 0]
    assert [(len(r.events), r.fragment) for r in frag] == [(2, True), (2, False)]
    assert frag[0].events[1].prev_kv.value == b"old"
    whole = [r for r in got if r.watch_id == 1]
    assert len(whole) == 1 and len(whole[0].events) == 4
    assert not whole[0].events[1].HasField("prev_kv")
    e.be.close()


def test_queue_bound_makes_victims(tmp_path: Path) -> None:
    e = Env(tmp_path)
    e.create(b"k")
    e.out()
    for i in range(watchstream.QUEUE + 50):
        e.put(b"k", str(i).encode())
    assert e.st.queued() == watchstream.QUEUE
    assert e.hub.stats()["victims"] == 1 and e.hub.stats()["pending_events"] == 1
    got = e.out()  # the reader drains: the hub is kicked and catches up
    for _ in range(20):
        asyncio.run(e.hub.step())
        got += e.out()
    assert [ev.kv.mod_revision for r in got for ev in r.events] == list(
        range(2, 2 + watchstream.QUEUE + 50))
    assert e.hub.stats()["victims"] == 0
    e.be.close()


def test_progress_waits_for_a_future_start_revision(tmp_path: Path) -> None:
    """etcd 3.6's progressIfSync: a watcher waiting for a future start revision holds
    the progress reply back until the member reaches it."""
    e = Env(tmp_path)
    e.create(b"k", start_revision=3)
    e.out()
    e.st.handle(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
    e.put(b"other")  # revision 2
    assert e.out() == []
    e.put(b"k")  # revision 3: the watcher's first event, then the deferred progress
    got = e.out()
    assert [(r.watch_id, len(r.events)) for r in got] == [(0, 1), (-1, 0)]
    assert got[-1].header.revision == 3
    e.be.close()


def test_a_compacted_watcher_stays_until_the_client_cancels_it(tmp_path: Path) -> None:
    """As etcd 3.6.16: the compacted reply cancels the watch, the ID stays taken, a
    progress request waits, and the client's cancel (clientv3 sends one) is answered."""
    e = Env(tmp_path)
    for i in range(4):
        e.put(b"k", b"%d" % i)
    e.be.compact(4)
    e.create(b"k", start_revision=2)
    asyncio.run(e.hub.step())
    got = e.out()
    assert [(r.watch_id, r.created, r.canceled, r.compact_revision) for r in got] == [
        (0, True, False, 0), (0, False, True, 4)]
    assert got[1].header.revision == 0  # etcd's header on a compacted reply
    e.create(b"j")  # the next auto ID skips the compacted one
    e.st.handle(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
    assert [r.watch_id for r in e.out()] == [1]
    e.st.handle(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=0)))
    assert [(r.watch_id, r.canceled) for r in e.out()] == [(0, True), (-1, False)]
    e.be.close()
