"""The auth store and its permission logic without a server: etcd's key-range rules
(points, ranges, open ends, unions), root rules, revisions, the command header that carries
the user, and simple tokens' TTL."""

from __future__ import annotations

from pathlib import Path

import pytest
from aetcd.rpc import auth_pb2, rpc_pb2

from raftkv.mvcc import authperm, commands, errors
from raftkv.mvcc.auth import AuthInfo, AuthStore, check_password, hash_password
from raftkv.server.tokens import SimpleTokens
from raftkv.storage.backend import Backend

R, W, RW = auth_pb2.Permission.READ, auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE


def test_point_range_and_open_ended_permissions() -> None:
    ivls = authperm.of_type([(R, b"a", b""), (RW, b"k/", b"k0"), (W, b"z", b"\x00")], R)
    assert authperm.permitted(ivls, b"a", b"")
    assert not authperm.permitted(ivls, b"b", b"")
    assert not authperm.permitted(ivls, b"a", b"b")  # one key does not cover [a, b)
    assert authperm.permitted(ivls, b"a", b"a\x00")  # ... but covers [a, a\0)
    assert authperm.permitted(ivls, b"k/x", b"")
    assert authperm.permitted(ivls, b"k/", b"k0")
    assert not authperm.permitted(ivls, b"k/", b"k1")
    assert not authperm.permitted(ivls, b"z", b"")  # WRITE only
    w = authperm.of_type([(W, b"z", b"\x00"), (RW, b"m", b"n")], W)
    assert authperm.permitted(w, b"z", b"\x00") and authperm.permitted(w, b"zz", b"")
    assert not authperm.permitted(w, b"y", b"\x00")
    # a union of adjacent intervals covers a range none covers alone
    u = authperm.of_type([(R, b"a", b"c"), (R, b"c", b"e"), (R, b"b", b"\x00")], R)
    assert authperm.permitted(u, b"a", b"\x00")
    gap = authperm.of_type([(R, b"a", b"c"), (R, b"d", b"e")], R)
    assert not authperm.permitted(gap, b"a", b"e")


def test_valid_permission_range() -> None:
    assert not authperm.valid_permission_range(b"", b"")
    assert authperm.valid_permission_range(b"a", b"") and authperm.valid_permission_range(
        b"a", b"\x00")
    assert not authperm.valid_permission_range(b"b", b"a")


@pytest.fixture
def store(tmp_path: Path) -> AuthStore:
    return AuthStore(Backend.open(tmp_path / "db", initial_revision=1))


def _apply(s: AuthStore, r: object) -> object:
    with s.backend.write_txn() as w:
        resp, _ = s.apply(r)
        w.end(1)
    return resp


def test_root_rules_and_enable(store: AuthStore) -> None:
    with pytest.raises(errors.RootUserNotExist):
        _apply(store, rpc_pb2.AuthEnableRequest())
    _apply(store, rpc_pb2.AuthUserAddRequest(name="root", hashedPassword=hash_password("p")))
    with pytest.raises(errors.RootRoleNotExist):
        _apply(store, rpc_pb2.AuthEnableRequest())
    _apply(store, rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))  # no such role: ok
    rev = store.revision
    _apply(store, rpc_pb2.AuthEnableRequest())
    assert store.enabled and store.revision == rev  # enabling does not move the revision
    with pytest.raises(errors.InvalidAuthMgmt):
        _apply(store, rpc_pb2.AuthUserDeleteRequest(name="root"))
    with pytest.raises(errors.InvalidAuthMgmt):
        _apply(store, rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root"))
    _apply(store, rpc_pb2.AuthDisableRequest())
    assert not store.enabled and store.revision == rev + 1


def test_checks_revision_user_and_reload(store: AuthStore, tmp_path: Path) -> None:
    for r in (rpc_pb2.AuthUserAddRequest(name="root", hashedPassword=hash_password("p")),
              rpc_pb2.AuthRoleAddRequest(name="root"),
              rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"),
              rpc_pb2.AuthUserAddRequest(name="u", hashedPassword=hash_password("q")),
              rpc_pb2.AuthRoleAddRequest(name="r"),
              rpc_pb2.AuthRoleGrantPermissionRequest(name="r", perm=auth_pb2.Permission(
                  permType=R, key=b"foo", range_end=b"fop")),
              rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"),
              rpc_pb2.AuthEnableRequest()):
        _apply(store, r)
    ai = AuthInfo("u", store.revision)
    store.check_range(ai, b"foo1")
    with pytest.raises(errors.PermissionDenied):
        store.check_put(ai, b"foo1")
    with pytest.raises(errors.UserEmpty):
        store.check_range(AuthInfo(), b"foo1")
    store.check_put(AuthInfo("root", store.revision), b"anything")
    with pytest.raises(errors.PermissionDenied):
        store.check_admin(ai)
    _apply(store, rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"foo", range_end=b"fop"))
    with pytest.raises(errors.AuthOldRevision):
        store.check_range(ai, b"foo1")
    with pytest.raises(errors.PermissionNotGranted):
        _apply(store, rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"foo"))
    again = AuthStore(store.backend)  # what a restart reads back
    assert (again.enabled, again.revision, again.users, again.roles) == (
        store.enabled, store.revision, store.users, store.roles)
    assert store.role_get("root").perm[0].range_end == b"\x00"


def test_passwords_are_salted_hashes() -> None:
    a, b = hash_password("secret"), hash_password("secret")
    assert a != b and "secret" not in a
    assert check_password(a, "secret") and not check_password(a, "Secret")
    assert not check_password("not base64!", "secret")


def test_command_carries_user_and_auth_revision() -> None:
    cmd = commands.Command(commands.Kind.PUT, 7, rpc_pb2.PutRequest(key=b"k"), 9, "ünï", 42)
    got = commands.decode(cmd.encode())
    assert (got.user, got.auth_revision, got.request.key, got.proposer) == ("ünï", 42, b"k", 9)
    plain = commands.Command(commands.Kind.PUT, 7, rpc_pb2.PutRequest(key=b"k"), 9)
    assert plain.encode()[0] == commands.VERSION  # no user: the old format
    with pytest.raises(commands.CommandError):
        commands.decode(cmd.encode()[:30])


def test_tokens_expire_after_last_use_and_go_with_their_user() -> None:
    clock = [0.0]
    t = SimpleTokens(10, lambda: clock[0])
    a = t.assign("u", "abc", 5)
    assert a == "abc.5"
    clock[0] = 9
    assert t.user_of(a) == "u"  # used: lives 10 s more
    clock[0] = 18
    assert t.user_of(a) == "u"
    clock[0] = 28.5
    assert t.user_of(a) is None
    b = t.assign("v", "x", 6)
    t.invalidate_user("v")
    assert t.user_of(b) is None
