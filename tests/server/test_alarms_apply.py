"""The replicated CORRUPT alarm in the apply path, without an event loop: an applied
ALARM entry refuses every later write alike on every member (revision unmoved,
consistent index moving), survives a reopen of the backend, and a DEACTIVATE lifts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.commands import Command, kind_of
from raftkv.mvcc.lease import Lessor
from raftkv.raft import Entry, EntryType
from raftkv.server.apply import Applier
from raftkv.server.membership import Membership
from raftkv.storage.backend import Backend


def _applier(path: Path) -> Applier:
    b = Backend.open(path, initial_revision=1)
    return Applier(b, Lessor(b, 2), Membership(), lambda: False, lambda: 0.0)


def _entry(index: int, request: Any) -> Entry:
    return Entry(1, index, EntryType.NORMAL,
                 Command(kind_of(request), index, request, 7).encode())


ALARM = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=42,
                             alarm=rpc_pb2.CORRUPT)
DISARM = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=42,
                              alarm=rpc_pb2.CORRUPT)


def test_corrupt_alarm_refuses_writes_until_disarmed(tmp_path: Path) -> None:
    members = [_applier(tmp_path / f"m{i}.db") for i in range(2)]
    for m in members:
        assert m.apply_normal(_entry(1, rpc_pb2.PutRequest(key=b"a", value=b"1"))).result
        assert list(m.apply_normal(_entry(2, ALARM)).result.alarms) == [
            rpc_pb2.AlarmMember(memberID=42, alarm=rpc_pb2.CORRUPT)]
        for i, req in enumerate([rpc_pb2.PutRequest(key=b"b", value=b"2"),
                                 rpc_pb2.DeleteRangeRequest(key=b"a"),
                                 rpc_pb2.CompactionRequest(revision=2),
                                 rpc_pb2.LeaseGrantRequest(ID=5, TTL=10)], start=3):
            out = m.apply_normal(_entry(i, req))
            assert isinstance(out.result, errors.Corrupt)
            assert out.result.message == "etcdserver: corrupt cluster"
        assert m.backend.current_revision() == 2 and m.backend.consistent_index() == 6
    b = members[0].backend
    b.close()
    again = _applier(tmp_path / "m0.db")  # the alarm is part of the stored state
    assert again.alarms.listed() == [(42, rpc_pb2.CORRUPT)]
    assert isinstance(again.apply_normal(_entry(7, rpc_pb2.PutRequest(key=b"c"))).result,
                      errors.Corrupt)
    again.apply_normal(_entry(8, DISARM))
    assert again.alarms.listed() == []
    out = again.apply_normal(_entry(9, rpc_pb2.PutRequest(key=b"c", value=b"3")))
    assert isinstance(out.result, rpc_pb2.PutResponse)
    assert again.backend.current_revision() == 3
