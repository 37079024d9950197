"""raftkv.mvcc.lease on a real backend: the lease -> keys index and incremental storage
(issue 11, defect 7: a revoke scanned the whole keyspace, every grant rewrote the table)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors, kv, lease
from raftkv.storage.backend import Backend

pb = rpc_pb2


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend.open(tmp_path / "db", initial_revision=1)
    try:
        yield b
    finally:
        b.close()


class Counting:
    """The Keyspace of a backend, counting range scans (range_end set) and point reads."""

    def __init__(self, b: Backend) -> None:
        self.b = b
        self.scans = 0
        self.points = 0

    def range(self, key: bytes, range_end: bytes | None, rev: int = 0,
              limit: int = 0) -> tuple[Sequence[Any], int]:
        if range_end is None:
            self.points += 1
        else:
            self.scans += 1
        return self.b.range(key, range_end, rev, limit)

    def current_revision(self) -> int:
        return self.b.current_revision()

    def compacted_revision(self) -> int:
        return self.b.compacted_revision()


_index = count(1)


def apply(b: Backend, fn: Any, ks: Any = None) -> Any:
    with b.write_txn() as w:
        out = fn(kv.Tx(ks or b, w))
        w.end(next(_index))
    return out


def grant(b: Backend, les: lease.Lessor, lid: int, ttl: int = 60) -> None:
    apply(b, lambda tx: les.grant(pb.LeaseGrantRequest(ID=lid, TTL=ttl), None))


def put(b: Backend, les: lease.Lessor, key: bytes, lid: int = 0) -> None:
    apply(b, lambda tx: kv.put(tx, pb.PutRequest(key=key, value=b"v", lease=lid), les))


def test_revoke_reads_only_the_leases_keys(backend: Backend) -> None:
    les = lease.Lessor(backend, 1)
    for lid in (1, 2):
        grant(backend, les, lid)
    for i in range(200):
        put(backend, les, b"free/%03d" % i)
    put(backend, les, b"a/1", 1)
    put(backend, les, b"a/2", 1)
    put(backend, les, b"b/1", 2)
    ks = Counting(backend)
    apply(backend, lambda tx: les.revoke(tx, 1), ks)
    assert ks.scans == 1  # building the index, once per process
    assert backend.range(b"a/", b"a0")[0] == []
    put(backend, les, b"b/2", 2)
    ks = Counting(backend)
    apply(backend, lambda tx: les.revoke(tx, 2), ks)
    assert ks.scans == 0 and ks.points == 2, (ks.scans, ks.points)
    assert backend.range(b"b/", b"b0")[0] == []
    assert len(backend.range(b"free/", b"free0")[0]) == 200


def test_the_index_may_hold_stale_keys_but_revoke_deletes_only_current_ones(
        backend: Backend) -> None:
    les = lease.Lessor(backend, 1)
    for lid in (1, 2):
        grant(backend, les, lid)
    les.keys(backend, 1)  # build the index now, so later puts go through attach
    put(backend, les, b"moved", 1)
    put(backend, les, b"moved", 2)  # now on lease 2
    put(backend, les, b"freed", 1)
    put(backend, les, b"freed", 0)  # no lease any more
    put(backend, les, b"gone", 1)
    apply(backend, lambda tx: tx.delete_range(b"gone", None))
    put(backend, les, b"kept", 1)
    assert les.keys(backend, 1) == [b"kept"]
    apply(backend, lambda tx: les.revoke(tx, 1))
    live = {k.key: k.lease for k in backend.range(b"\0", b"\0")[0]}
    assert live == {b"moved": 2, b"freed": 0}
    # a member that rebuilt its index from the keyspace (a restart) agrees
    assert lease.Lessor(backend, 1).keys(backend, 2) == les.keys(backend, 2) == [b"moved"]


def test_a_grant_rewrites_one_bucket_not_the_table(backend: Backend) -> None:
    les = lease.Lessor(backend, 1)
    for lid in range(1, 2001):
        grant(backend, les, lid)
    writes: list[tuple[str, int]] = []
    real = backend.meta_put
    backend.meta_put = lambda name, value: (writes.append((name, len(value))),  # type: ignore[method-assign]
                                            real(name, value))[1]
    grant(backend, les, 5000)
    apply(backend, lambda tx: les.revoke(tx, 7))
    table = len(json.dumps({str(k): v for k, v in les.ttls.items()}))
    assert [n for n, _ in writes] == [lease.bucket_name(5000), lease.bucket_name(7)]
    assert all(size < table / 50 for _, size in writes), (writes, table)
    backend.force_commit()
    again = lease.Lessor(backend, 1)
    assert again.ttls == les.ttls and 7 not in again.ttls and again.ttls[5000] == 60


def test_the_whole_table_blob_of_older_versions_is_read_and_split(backend: Backend) -> None:
    backend.meta_put(lease.LEGACY_META, json.dumps({"11": 30, "12": 40}).encode())
    les = lease.Lessor(backend, 1)
    assert les.ttls == {11: 30, 12: 40}
    assert backend.meta_get(lease.LEGACY_META) == b"{}"
    assert lease.Lessor(backend, 1).ttls == {11: 30, 12: 40}


def test_revoke_of_an_unknown_lease(backend: Backend) -> None:
    les = lease.Lessor(backend, 1)
    with pytest.raises(errors.LeaseNotFound):
        apply(backend, lambda tx: les.revoke(tx, 99))
