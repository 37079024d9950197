"""Backend: etcd's revision model against a reference model, compaction, batching,
atomicity of data and consistent index, size and defragmentation, snapshot round trip."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.storage.backend import Backend, KeyValue
from raftkv.storage.errors import CompactedError, FutureRevError, StorageError
from raftkv.storage.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def test_revisions_versions_tombstones(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    with b.write_txn() as t:
        assert t.rev == 1
        assert t.put(b"a", b"1", lease=7) is None
        assert t.put(b"b", b"1") is None
        t.end(10)
    with b.write_txn() as t:
        prev = t.put(b"a", b"2")
        assert prev == KeyValue(b"a", b"1", 1, 1, 1, 7)
        t.end(11)
    with b.write_txn() as t:
        assert [kv.key for kv in t.delete_range(b"a", b"c")] == [b"a", b"b"]
        t.end(12)
    with b.write_txn() as t:  # recreate: version and create revision start over
        t.put(b"a", b"3")
        t.end(13)
    with b.write_txn() as t:  # a txn that writes nothing takes no revision
        assert t.delete_range(b"zz") == []
        t.end(14)
    assert b.current_revision() == 4 and b.consistent_index() == 14
    assert b.range(b"a") == ([KeyValue(b"a", b"3", 4, 4, 1, 0)], 1)
    assert b.range(b"a", b"\0", rev=2) == (
        [KeyValue(b"a", b"2", 1, 2, 2, 0), KeyValue(b"b", b"1", 1, 1, 1, 0)], 2)
    assert b.range(b"a", b"\0", rev=3) == ([], 0)
    with pytest.raises(FutureRevError):
        b.range(b"a", rev=5)
    b.close()
    b = Backend.open(tmp_path / "db")
    assert (b.current_revision(), b.consistent_index()) == (4, 14)
    assert b.range(b"a", b"\0", rev=1)[1] == 2


def test_range_semantics_limit_and_count(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    with b.write_txn() as t:
        for k in (b"a", b"foo", b"foo/1", b"foo/2", b"fop", b"z\xff"):
            t.put(k, k)
        t.end(1)
    keys = lambda r: [kv.key for kv in r[0]]  # noqa: E731
    assert keys(b.range(b"foo")) == [b"foo"]
    assert keys(b.range(b"foo", b"")) == [b"foo"]
    assert keys(b.range(b"foo/", b"foo0")) == [b"foo/1", b"foo/2"]
    assert keys(b.range(b"f", b"\0")) == [b"foo", b"foo/1", b"foo/2", b"fop", b"z\xff"]
    assert keys(b.range(b"\0", b"\0")) == [b"a", b"foo", b"foo/1", b"foo/2", b"fop", b"z\xff"]
    kvs, count = b.range(b"a", b"\0", limit=2)
    assert [kv.key for kv in kvs] == [b"a", b"foo"] and count == 6


def test_compaction(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    for i in range(1, 11):
        with b.write_txn() as t:
            t.put(b"k", b"%d" % i)
            if i == 3:
                t.put(b"gone", b"x")
            if i == 5:
                t.delete_range(b"gone")
            t.end(i)
    rows = lambda: b._conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0]  # noqa: E731
    assert rows() == 12
    b.compact(6, consistent_index=11)
    assert rows() == 5  # k@6..k@10; gone's put and tombstone are dropped
    assert b.compacted_revision() == 6 and b.consistent_index() == 11
    with pytest.raises(CompactedError):
        b.range(b"k", rev=5)
    assert b.range(b"k", rev=6)[0][0].value == b"6"  # as etcd: the compacted rev is readable
    assert b.range(b"k", rev=7)[0][0].value == b"7"
    assert b.range(b"gone", rev=6) == ([], 0)
    assert b.range(b"k")[0][0] == KeyValue(b"k", b"10", 1, 10, 10, 0)
    with pytest.raises(CompactedError):
        b.compact(6)
    with pytest.raises(FutureRevError):
        b.compact(11)
    b.close()
    b = Backend.open(tmp_path / "db")
    assert b.compacted_revision() == 6
    with pytest.raises(CompactedError):
        b.range(b"k", rev=2)


# --- reference model ------------------------------------------------------------------

KEYS = [b"a", b"b", b"c", b"d", b"e"]
op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(max_size=3),
              st.integers(0, 2)),
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.sampled_from([None, b"c", b"\0"])),
    st.tuples(st.just("compact"), st.integers(0, 40)),
    st.tuples(st.just("commit")),
    st.tuples(st.just("abort")),  # the txn raises after its writes: rolled back
)


class Model:
    """Every revision's whole keyspace: the obvious, slow reference."""

    def __init__(self) -> None:
        self.states: list[dict[bytes, KeyValue]] = [{}]
        self.compacted = 0

    def txn(self, ops: list[tuple]) -> None:
        cur = dict(self.states[-1])
        rev = len(self.states)
        wrote = False
        for o in ops:
            if o[0] == "put":
                _, k, v, lease = o
                prev = cur.get(k)
                cur[k] = KeyValue(k, v, prev.create_revision if prev else rev, rev,
                                  prev.version + 1 if prev else 1, lease)
                wrote = True
            else:
                _, k, end = o
                for key in self.keys(cur, k, end):
                    del cur[key]
                    wrote = True
        if wrote:
            self.states.append(cur)

    @staticmethod
    def keys(state: dict[bytes, KeyValue], k: bytes, end: bytes | None) -> list[bytes]:
        if not end:
            return [k] if k in state else []
        return sorted(x for x in state if x >= k and (end == b"\0" or x < end))


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(op, min_size=1, max_size=4), min_size=1, max_size=25))
def test_against_model(tmp_path_factory: pytest.TempPathFactory,
                       txns: list[list[tuple]]) -> None:
    b = Backend.open(tmp_path_factory.mktemp("m") / "db", batch_limit=3)
    b.latest_cache_bytes = 24  # a few keys: the latest-row cache empties often
    m = Model()
    index = 0
    for ops in txns:
        data_ops = [o for o in ops if o[0] in ("put", "del")]
        abort = ("abort",) in ops
        with contextlib.suppress(ZeroDivisionError), b.write_txn() as t:
            for o in data_ops:
                if o[0] == "put":
                    t.put(o[1], o[2], o[3])
                else:
                    t.delete_range(o[1], o[2])
            if abort:
                raise ZeroDivisionError
            index += 1
            t.end(index)
        if not abort:
            m.txn(data_ops)
        for o in ops:
            if o[0] == "compact":
                cur = len(m.states) - 1
                if m.compacted < o[1] <= cur:
                    b.compact(o[1])
                    m.compacted = o[1]
                else:
                    with pytest.raises((CompactedError, FutureRevError)):
                        b.compact(o[1])
            elif o[0] == "commit":
                b.force_commit()
        assert b.current_revision() == len(m.states) - 1
        assert b.consistent_index() == index
        for rev in range(0, len(m.states)):
            if 0 < rev < m.compacted:
                with pytest.raises(CompactedError):
                    b.range(b"a", b"\0", rev=rev)
                continue
            want = m.states[rev or -1]
            assert b.range(b"a", b"\0", rev=rev) == ([want[k] for k in sorted(want)], len(want))
            for k in KEYS:
                assert b.range(k, rev=rev)[0] == ([want[k]] if k in want else [])
    b.close()


# --- atomicity of data and consistent index --------------------------------------------


def test_latest_row_cache_sees_what_the_database_holds(tmp_path: Path) -> None:
    """A put's version and create revision come from the key's newest row; the cache of
    those rows must give the same after a txn that wrote a key twice, a rolled-back txn,
    a delete, and when it empties for lack of room."""
    b = Backend.open(tmp_path / "db")
    with b.write_txn() as t:
        t.put(b"a", b"1")
        t.end(1)
    with b.write_txn() as t:  # the second put sees the first, not the cached row before
        t.put(b"a", b"2")
        t.put(b"a", b"3")
        t.end(2)
    with pytest.raises(ZeroDivisionError), b.write_txn() as t:
        t.put(b"a", b"x")
        t.end(3)
        raise ZeroDivisionError
    with b.write_txn() as t:
        t.put(b"a", b"4")
        t.end(3)
    assert b.range(b"a")[0] == [KeyValue(b"a", b"4", 1, 3, 4, 0)]
    with b.write_txn() as t:
        t.delete_range(b"a")
        t.end(4)
    b.latest_cache_bytes = 3
    for i, v in enumerate([b"5", b"6", b"long value"]):
        with b.write_txn() as t:
            t.put(b"a", v)
            t.end(5 + i)
    assert b.range(b"a")[0] == [KeyValue(b"a", b"long value", 5, 7, 3, 0)]


def test_txn_left_without_end_is_rolled_back(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    with pytest.raises(StorageError, match="end"), b.write_txn() as t:
        t.put(b"a", b"1")
    assert b.range(b"a") == ([], 0) and b.current_revision() == 0
    with pytest.raises(ZeroDivisionError), b.write_txn() as t:
        t.put(b"a", b"1")
        t.end(1)
        raise ZeroDivisionError
    assert b.range(b"a") == ([], 0) and b.consistent_index() == 0
    b.close()  # commits the batch: the rolled-back txn must not have reached its state rows
    b = Backend.open(tmp_path / "db")
    assert (b.consistent_index(), b.current_revision(), b.range(b"a")) == (0, 0, ([], 0))


def test_crash_loses_the_uncommitted_batch_whole(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db", batch_limit=1000, batch_interval=3600)
    for i in range(1, 6):
        with b.write_txn() as t:
            t.put(b"k%d" % i, b"v")
            t.end(i)
    b.force_commit()
    for i in range(6, 9):
        with b.write_txn() as t:
            t.put(b"k%d" % i, b"v")
            t.end(i)
    assert b.range(b"k8")[1] == 1  # reads see applied, uncommitted writes
    b.close_without_commit()
    b = Backend.open(tmp_path / "db")
    assert b.consistent_index() == 5 and b.current_revision() == 5
    assert [kv.key for kv in b.range(b"k", b"\0")[0]] == [b"k%d" % i for i in range(1, 6)]


CHILD = r"""
import sys, random
from pathlib import Path
from raftkv.storage.backend import Backend
b = Backend.open(Path(sys.argv[1]), batch_limit=int(sys.argv[2]), batch_interval=0.005)
start = b.consistent_index()
rng = random.Random(int(sys.argv[3]))
for i in range(start + 1, start + 100000):
    with b.write_txn() as t:
        t.put(b"k%08d" % i, b"v" * rng.randrange(1, 2000))
        if i % 7 == 0:
            t.delete_range(b"k%08d" % (i - 3))
        t.end(i)
    b.maybe_commit()
    if i == start + 50:
        print("go", flush=True)
"""


def _expected(ci: int) -> set[bytes]:
    keys = {b"k%08d" % i for i in range(1, ci + 1)}
    return keys - {b"k%08d" % (i - 3) for i in range(7, ci + 1, 7)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_batch_keeps_index_and_data_together(tmp_path: Path, seed: int) -> None:
    """A real process killed at a random moment: the committed consistent index always
    matches the committed data exactly (no half-applied batch), revision = index."""
    db = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(2):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(10 + 37 * seed),
                              str(seed * 10 + round_)],
                             stdout=subprocess.PIPE, env=env)
        assert p.stdout is not None
        assert p.stdout.readline() == b"go\n"
        time.sleep(0.05 * seed)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        b = Backend.open(db)
        ci = b.consistent_index()
        assert ci >= 1 and b.current_revision() == ci
        assert {kv.key for kv in b.range(b"k", b"\0")[0]} == _expected(ci)
        b.close()


# --- batching, metrics, meta ------------------------------------------------------------


def test_batching_by_count_and_interval(tmp_path: Path) -> None:
    def commits() -> float:
        v = REGISTRY.get_sample_value("etcd_disk_backend_commit_duration_seconds_count")
        return v or 0.0

    b = Backend.open(tmp_path / "db", batch_limit=3, batch_interval=3600)
    c0 = commits()
    for i in range(1, 7):
        with b.write_txn() as t:
            t.put(b"k", b"%d" % i)
            t.end(i)
    assert commits() == c0 + 2  # two full batches of 3
    b2 = Backend.open(tmp_path / "db2", batch_limit=1000, batch_interval=0.01)
    with b2.write_txn() as t:
        t.put(b"k", b"v")
        t.end(1)
    assert not b2.maybe_commit()
    time.sleep(0.02)
    assert b2.maybe_commit()
    assert commits() == c0 + 3


def test_meta_persists_with_batch(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    b.meta_put("member_id", (0xABC).to_bytes(8, "big"))
    assert b.meta_get("member_id") == (0xABC).to_bytes(8, "big")
    assert b.meta_get("cluster_id") is None
    b.close()
    b = Backend.open(tmp_path / "db")
    assert b.meta_get("member_id") == (0xABC).to_bytes(8, "big")


# --- size, defragment, snapshots ------------------------------------------------------


def _fill(b: Backend, n: int, index: int = 0, size: int = 256) -> int:
    with b.write_txn() as t:
        for i in range(n):
            t.put(b"key/%06d" % i, bytes([i % 256]) * size)
        t.end(index + 1)
    b.force_commit()
    return index + 1


def test_size_in_use_and_defragment(tmp_path: Path) -> None:
    b = Backend.open(tmp_path / "db")
    _fill(b, 3000)
    with b.write_txn() as t:
        t.delete_range(b"key/", b"key0")
        t.end(2)
    b.compact(2)
    b.force_commit()
    b._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b.size_in_use() < b.size() // 2
    before = b.size()
    b.defragment()
    assert b.size() < before // 2
    assert b.size() == b.size_in_use()
    assert os.path.getsize(tmp_path / "db") == b.size()


def test_snapshot_copy_stream_and_install(tmp_path: Path) -> None:
    leader = Backend.open(tmp_path / "leader" / "db")
    _fill(leader, 500)
    leader.meta_put("cluster_id", b"c1")
    with leader.write_txn() as t:  # uncommitted: snapshot_to must commit it first
        t.put(b"late", b"!")
        t.end(2)
    digest = leader.snapshot_to(tmp_path / "snap.db")
    received = tmp_path / "follower" / "incoming.db"
    received.parent.mkdir()
    with open(received, "wb") as f:
        for chunk in Backend.read_snapshot_chunks(tmp_path / "snap.db", chunk_size=4096):
            assert len(chunk) <= 4096
            f.write(chunk)
    follower = Backend.open(tmp_path / "follower" / "db")
    _fill(follower, 10, size=3)
    with pytest.raises(StorageError, match="close"):
        Backend.install(tmp_path / "follower" / "db", received, digest)
    follower.close()
    bad = tmp_path / "bad.db"
    data = bytearray(received.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="SHA-256"):
        Backend.install(tmp_path / "follower" / "db", bad, digest)
    follower = Backend.install(tmp_path / "follower" / "db", received, digest)
    assert not received.exists()
    assert follower.consistent_index() == 2 and follower.current_revision() == 2
    assert follower.meta_get("cluster_id") == b"c1"
    assert follower.range(b"\0", b"\0") == leader.range(b"\0", b"\0")
    assert follower.range(b"late")[0][0].value == b"!"


def test_snapshot_copy_in_a_worker_holds_only_committed_state(tmp_path: Path) -> None:
    """Issue 11 defect 3: the server commits on its loop, then copies in a worker while the
    loop goes on applying. The copy goes through a read connection of its own, so it is the
    committed point, made while the loop's batch is open and an entry is half applied (a
    backup through the loop's connection got SQLITE_LOCKED and waited for the loop)."""
    b = Backend.open(tmp_path / "db")
    _fill(b, 100)
    b.commit_for_snapshot()
    with b.write_txn() as t:  # the next batch, applied but not committed
        t.put(b"batched", b"1")
        t.end(2)
    worker = threading.Thread(target=b.copy_committed_to, args=(tmp_path / "snap.db",))
    with b.write_txn() as t:  # an entry half applied when the worker copies
        t.put(b"half", b"1")
        worker.start()
        worker.join(10)
        copied_meanwhile = not worker.is_alive()
        t.end(3)
    b.force_commit()  # the writer's batch ends: a waiting copy can finish now
    worker.join()
    assert copied_meanwhile, "the copy waited for the writer's transaction to end"
    copy = Backend.open(tmp_path / "snap.db")
    assert (copy.consistent_index(), copy.current_revision()) == (1, 1)
    assert copy.range(b"batched")[0] == [] and copy.range(b"half")[0] == []
    assert len(copy.range(b"key/", b"key0")[0]) == 100
    copy.close()
    b.close()



@pytest.mark.parametrize("batch_limit", [1, 3])
def test_crash_before_every_sql_statement(tmp_path: Path, batch_limit: int) -> None:
    """A crash image (the database files as they are on disk) taken just before each SQL
    statement in turn (data rows, state row, savepoint release, COMMIT...): once
    recovered, the data and the consistent index are never seen apart."""
    db = tmp_path / "db"
    b = Backend.open(db, batch_limit=batch_limit)
    images: list[Path] = []

    def trace(sql: str) -> None:
        d = tmp_path / f"img{len(images)}"
        d.mkdir()
        for suffix in ("", "-wal"):
            src = db.with_name("db" + suffix)
            if src.exists():
                shutil.copyfile(src, d / src.name)
        images.append(d / "db")

    b._conn.set_trace_callback(trace)
    for i in range(1, 5):
        with b.write_txn() as t:
            t.put(b"a%d" % i, b"x")
            t.put(b"b%d" % i, b"y")
            t.end(i)
    b.force_commit()
    b._conn.set_trace_callback(None)
    trace("after the last commit")
    assert len(images) > 20
    seen = set()
    for k, img in enumerate(images):
        r = Backend.open(img)
        ci = r.consistent_index()
        keys = {kv.key for kv in r.range(b"\0", b"\0")[0]}
        assert keys == {p + b"%d" % i for i in range(1, ci + 1) for p in (b"a", b"b")}, k
        assert r.current_revision() == ci
        seen.add(ci)
        r.close()
    assert seen == ({0, 1, 2, 3, 4} if batch_limit == 1 else {0, 3, 4})
