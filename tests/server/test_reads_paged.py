"""Paged reads and paged compaction give exactly what the one-shot versions give: a Range
read a few keys at a time (raftkv.server.reads) equals kv.range_ for random requests
(sort, limit, revision, filters, keys/count only), and a compaction run a page at a time
leaves the same rows (HashKV) as Backend.compact. Seeded: RAFTKV_SEED=<n> replays."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors, kv
from raftkv.server.reads import range_paged
from raftkv.storage.backend import Backend

SEED = int(os.environ.get("RAFTKV_SEED", "0")) or random.randrange(1 << 30)


def _history(path: Path, rng: random.Random) -> Backend:
    b = Backend.open(path, initial_revision=1)
    keys = [b"k%02d" % i for i in range(40)]
    for i in range(300):
        with b.write_txn() as w:
            k = rng.choice(keys)
            if rng.random() < 0.2:
                w.delete_range(k, None)
            else:
                w.put(k, b"v%d" % rng.randrange(1000))
            w.end(i + 1)
    return b


def _request(rng: random.Random, current: int) -> rpc_pb2.RangeRequest:
    lo = rng.randrange(40)
    end = rng.choice([b"", b"\0", b"k%02d" % rng.randrange(lo, 41)])
    return rpc_pb2.RangeRequest(
        key=b"k%02d" % lo, range_end=end, limit=rng.choice([0, 0, 1, 3, 7]),
        revision=rng.choice([0, 0, -1, -(2**63), rng.randrange(1, current + 1)]),
        sort_order=rng.randrange(3), sort_target=rng.randrange(5),  # type: ignore[arg-type]
        keys_only=rng.random() < 0.2, count_only=rng.random() < 0.1,
        min_mod_revision=rng.choice([0, 0, rng.randrange(1, current + 1)]),
        max_create_revision=rng.choice([0, 0, rng.randrange(1, current + 1)]))


def test_paged_range_equals_the_one_shot_range(tmp_path: Path) -> None:
    print(f"RAFTKV_SEED={SEED}")
    rng = random.Random(SEED)
    b = _history(tmp_path / "db", rng)
    lock = asyncio.Lock()
    for _ in range(300):
        r = _request(rng, b.current_revision())
        want: object
        try:
            want = kv.range_(b, r)
        except errors.EtcdError as exc:
            want = type(exc)
        try:
            got: object = asyncio.run(range_paged(b, lock, r, page=3))
        except errors.EtcdError as exc:
            got = type(exc)
        assert got == want, (SEED, r)


@pytest.mark.parametrize("page", [1, 7, 1000])
def test_paged_compaction_leaves_the_same_rows(tmp_path: Path, page: int) -> None:
    print(f"RAFTKV_SEED={SEED}")
    a = _history(tmp_path / "a.db", random.Random(SEED))
    b = _history(tmp_path / "b.db", random.Random(SEED))
    rev = a.current_revision() - 50
    a.compact(rev)
    b.schedule_compact(rev)
    with b.write_txn() as w:  # a write between the steps changes nothing they delete
        w.put(b"k00", b"later")
        w.end(1000)
    with a.write_txn() as w:
        w.put(b"k00", b"later")
        w.end(1000)
    while b.compact_step(page):
        pass
    assert b.compact_pending() == 0
    assert a.hash_kv() == b.hash_kv()
    b.force_commit()
    b.close()
    reopened = Backend.open(tmp_path / "b.db", initial_revision=1)
    assert reopened.compact_pending() == 0 and reopened.compacted_revision() == rev
