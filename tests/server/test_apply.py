"""The apply path without an event loop (issue 11, defect 1 and the shape): entries go
into three independent backends as three members would apply them; apply is total for
content errors, fatal for storage errors, and deterministic (HashKV equal)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors, kv
from raftkv.mvcc.commands import Command, kind_of
from raftkv.mvcc.lease import Lessor
from raftkv.raft import Entry, EntryType
from raftkv.server.apply import Applier, ApplyRejected
from raftkv.server.membership import Membership
from raftkv.storage.backend import Backend

PROPOSER = 0xABC


def _applier(path: Path) -> Applier:
    b = Backend.open(path, initial_revision=1)
    return Applier(b, Lessor(b, 2), Membership(), lambda: False, lambda: 0.0)


def _entry(index: int, request: Any, rid: int | None = None) -> Entry:
    cmd = Command(kind_of(request), rid or index, request, PROPOSER)
    return Entry(1, index, EntryType.NORMAL, cmd.encode())


def _put(k: bytes, v: bytes) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=k, value=v)


POISON = rpc_pb2.TxnRequest(success=[
    rpc_pb2.RequestOp(request_put=_put(b"a", b"2")),
    rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a", sort_target=99)),  # type: ignore[arg-type]
])
FUTURE_READ = rpc_pb2.TxnRequest(success=[  # etcd-io/etcd#18667: must not diverge
    rpc_pb2.RequestOp(request_put=_put(b"a", b"3")),
    rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a", revision=3)),
])


def test_poison_entries_roll_back_alike_on_every_member(tmp_path: Path) -> None:
    members = [_applier(tmp_path / f"m{i}.db") for i in range(3)]
    log = [_entry(1, _put(b"a", b"1")), _entry(2, POISON), _entry(3, FUTURE_READ),
           _entry(4, _put(b"b", b"1"))]
    outcomes = []
    for m in members:
        outcomes.append([m.apply_normal(e) for e in log])
        assert m.backend.consistent_index() == 4
        assert m.backend.current_revision() == 3  # the two rejected entries wrote nothing
        assert [kv.value for kv in m.backend.range(b"a")[0]] == [b"1"]
    for out in outcomes:
        assert out[0].key == (PROPOSER, 1)
        assert isinstance(out[1].result, errors.EtcdError)
        assert isinstance(out[2].result, errors.FutureRev)
        assert out[3].result.header.revision == 3
    assert len({m.backend.hash_kv() for m in members}) == 1
    # and after a restart (the batch committed on close), the same
    for i, m in enumerate(members):
        m.backend.close()
        members[i] = _applier(tmp_path / f"m{i}.db")
    assert {(m.backend.consistent_index(), m.backend.current_revision()) for m in members} == {
        (4, 3)}
    assert len({m.backend.hash_kv() for m in members}) == 1


def test_any_content_exception_is_rolled_back_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _applier(tmp_path / "m.db")
    m.apply_normal(_entry(1, _put(b"a", b"1")))

    def boom(tx: kv.Tx, r: rpc_pb2.DeleteRangeRequest) -> None:
        tx.put(b"half", b"written", 0)
        raise KeyError(99)

    monkeypatch.setattr(kv, "delete_range", boom)
    out = m.apply_normal(_entry(2, rpc_pb2.DeleteRangeRequest(key=b"a")))
    assert isinstance(out.result, ApplyRejected)
    assert m.backend.consistent_index() == 2
    assert m.backend.current_revision() == 2
    assert m.backend.range(b"half")[0] == []
    assert m.metrics.rejected._value.get() == 1


def test_storage_errors_stay_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _applier(tmp_path / "m.db")

    def disk_error(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(kv, "put", disk_error)
    with pytest.raises(sqlite3.OperationalError):
        m.apply_normal(_entry(1, _put(b"a", b"1")))


def test_undecodable_and_empty_entries_advance_the_index(tmp_path: Path) -> None:
    m = _applier(tmp_path / "m.db")
    assert m.apply_normal(Entry(1, 1, EntryType.NORMAL, b"")).key is None
    assert m.apply_normal(Entry(1, 2, EntryType.NORMAL, b"\x09garbage-garbage")).key is None
    assert m.backend.consistent_index() == 2 and m.backend.current_revision() == 1
