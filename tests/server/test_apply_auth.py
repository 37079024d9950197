"""Permissions at apply time, without an event loop: an entry is checked against the user
and auth revision it carries, alike on every member, and an entry proposed before an auth
change that committed ahead of it is refused with "auth old revision" (etcd's apply)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aetcd.rpc import auth_pb2, rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.auth import hash_password
from raftkv.mvcc.commands import Command, kind_of
from raftkv.mvcc.lease import Lessor
from raftkv.raft import Entry, EntryType
from raftkv.server.apply import Applier
from raftkv.server.membership import Membership
from raftkv.storage.backend import Backend

SETUP: list[Any] = [
    rpc_pb2.AuthUserAddRequest(name="root", hashedPassword=hash_password("rootpw")),
    rpc_pb2.AuthRoleAddRequest(name="root"),
    rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"),
    rpc_pb2.AuthUserAddRequest(name="alice", hashedPassword=hash_password("pw")),
    rpc_pb2.AuthRoleAddRequest(name="app"),
    rpc_pb2.AuthRoleGrantPermissionRequest(name="app", perm=auth_pb2.Permission(
        permType=auth_pb2.Permission.READWRITE, key=b"app/", range_end=b"app0")),
    rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="app"),
    rpc_pb2.AuthEnableRequest(),
]


def _members(tmp_path: Path) -> list[Applier]:
    out = []
    for i in range(3):
        b = Backend.open(tmp_path / f"m{i}.db", initial_revision=1)
        out.append(Applier(b, Lessor(b, 2), Membership(), lambda: False, lambda: 0.0))
    return out


def _entry(index: int, request: Any, user: str = "", rev: int = 0) -> Entry:
    cmd = Command(kind_of(request), index, request, 1, user, rev)
    return Entry(1, index, EntryType.NORMAL, cmd.encode())


def test_writes_are_checked_at_apply_against_the_entrys_auth_revision(tmp_path: Path) -> None:
    members = _members(tmp_path)
    log = [_entry(i + 1, r) for i, r in enumerate(SETUP)]
    n = len(log)
    rev = n  # every setup step but enable moved the revision from 1
    put = rpc_pb2.PutRequest(key=b"app/x", value=b"1")
    log += [
        _entry(n + 1, put, "alice", rev),  # allowed
        _entry(n + 2, rpc_pb2.PutRequest(key=b"other", value=b"1"), "alice", rev),  # denied
        _entry(n + 3, put),  # nobody
        _entry(n + 4, rpc_pb2.AuthRoleAddRequest(name="late"), "alice", rev),  # not root
        # proposed at ``rev`` but committed after a change by root: too old
        _entry(n + 5, rpc_pb2.AuthRoleAddRequest(name="ops"), "root", rev),
        _entry(n + 6, put, "alice", rev),
        _entry(n + 7, put, "alice", rev + 1),  # re-proposed at the new revision
    ]
    results = []
    for m in members:
        assert all(not isinstance(m.apply_normal(e).result, Exception) for e in log[:n])
        results.append([m.apply_normal(e).result for e in log[n:]])
        assert m.auth.revision == rev + 1
        assert m.backend.current_revision() == 3  # two puts
    for res in results:
        assert isinstance(res[0], rpc_pb2.PutResponse)
        assert isinstance(res[1], errors.PermissionDenied)
        assert isinstance(res[2], errors.UserEmpty)
        assert isinstance(res[3], errors.PermissionDenied)
        assert isinstance(res[4], rpc_pb2.AuthRoleAddResponse)
        assert isinstance(res[5], errors.AuthOldRevision)
        assert isinstance(res[6], rpc_pb2.PutResponse)


def test_authenticate_gives_every_member_the_token_and_delete_takes_it(tmp_path: Path) -> None:
    members = _members(tmp_path)
    log = [_entry(i + 1, r) for i, r in enumerate(SETUP)]
    n = len(log)
    log.append(_entry(n + 1, rpc_pb2.AuthenticateRequest(name="alice", password="PREFIX")))
    tokens = {[m.apply_normal(e).result for e in log][-1].token for m in members}
    assert tokens == {f"PREFIX.{n + 1}"}
    assert all(m.tokens.user_of(f"PREFIX.{n + 1}") == "alice" for m in members)
    gone = _entry(n + 2, rpc_pb2.AuthUserDeleteRequest(name="alice"), "root", n)
    for m in members:
        assert isinstance(m.apply_normal(gone).result, rpc_pb2.AuthUserDeleteResponse)
        assert m.tokens.user_of(f"PREFIX.{n + 1}") is None


def test_a_replayed_authenticate_gives_no_token(tmp_path: Path) -> None:
    m = _members(tmp_path)[0]
    for i, r in enumerate(SETUP):
        m.apply_normal(_entry(i + 1, r))
    n = len(SETUP)
    m.tokens_from = n + 2  # as after a restart whose WAL ended at n + 1
    old = m.apply_normal(_entry(n + 1, rpc_pb2.AuthenticateRequest(name="alice", password="P")))
    assert old.result.token == "" and len(m.tokens) == 0
    new = m.apply_normal(_entry(n + 2, rpc_pb2.AuthenticateRequest(name="alice", password="Q")))
    assert new.result.token == f"Q.{n + 2}" and m.tokens.user_of(new.result.token) == "alice"


def test_leases_holding_keys_alice_cannot_write_are_hers_to_neither_use_nor_revoke(
        tmp_path: Path) -> None:
    m = _members(tmp_path)[0]
    for i, r in enumerate(SETUP):
        m.apply_normal(_entry(i + 1, r))
    n, rev = len(SETUP), len(SETUP)
    grant = rpc_pb2.LeaseGrantRequest(ID=77, TTL=60)
    steps: list[tuple[Any, str, type]] = [
        (grant, "root", rpc_pb2.LeaseGrantResponse),
        (rpc_pb2.PutRequest(key=b"sys/k", value=b"1", lease=77), "root", rpc_pb2.PutResponse),
        (rpc_pb2.PutRequest(key=b"app/k", value=b"1", lease=77), "alice", errors.PermissionDenied),
        (rpc_pb2.LeaseRevokeRequest(ID=77), "alice", errors.PermissionDenied),
        (rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(
            key=b"app/k", value=b"1", lease=77))]), "alice", errors.PermissionDenied),
        (rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"sys/k")]), "alice",
         errors.PermissionDenied),  # a compare needs read on its key
        (rpc_pb2.LeaseRevokeRequest(ID=77), "root", rpc_pb2.LeaseRevokeResponse),
    ]
    for i, (req, user, want) in enumerate(steps):
        got = m.apply_normal(_entry(n + 1 + i, req, user, rev)).result
        assert isinstance(got, want), (i, got)
