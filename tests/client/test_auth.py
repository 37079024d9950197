"""etcdctl's --user/--password rules and the auth refusals' kinds."""

from __future__ import annotations

import grpc
import pytest

from raftkv.client import Credentials, ErrorKind, classify, parse_user
from raftkv.client.errors import _auth_error


def test_parse_user_as_etcdctl() -> None:
    assert parse_user(None, None) is None
    assert parse_user("root:pw", None) == Credentials("root", "pw")
    assert parse_user("root:p:w", None) == Credentials("root", "p:w")  # first colon splits
    assert parse_user("a:b", "pw") == Credentials("a:b", "pw")  # --password: all is the name
    assert parse_user("root:", None) == Credentials("root", "")
    assert "pw" not in repr(Credentials("root", "pw"))


@pytest.mark.parametrize(("user", "password", "words"), [
    ("alice", None, "--user alice has no password"),
    (None, "pw", "--password needs --user"),
    (":pw", None, "needs a user name"),
])
def test_parse_user_refuses(user: str | None, password: str | None, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_user(user, password)


@pytest.mark.parametrize(("code", "detail", "kind"), [
    (grpc.StatusCode.INVALID_ARGUMENT,
     "etcdserver: authentication failed, invalid user ID or password", ErrorKind.AUTH_FAILED),
    (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token", ErrorKind.AUTH_FAILED),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty",
     ErrorKind.AUTH_REQUIRED),
    (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", None),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", None),
])
def test_auth_refusals(code: grpc.StatusCode, detail: str, kind: ErrorKind | None) -> None:
    err = _auth_error(code, detail, "ep")
    assert (err.kind if err else None) is kind


def test_classify_keeps_other_errors_etcd_errors() -> None:
    assert classify(ValueError("x"), "ep", False).kind is ErrorKind.RPC
