"""Who is asking, without a server: tokens from metadata, the client certificate's CN with
--client-cert-auth, and etcd's refusals (invalid token, user name is empty, not root)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.auth import AuthInfo, AuthStore, hash_password
from raftkv.server.authgate import AuthGate, token_metadata
from raftkv.server.tokens import SimpleTokens
from raftkv.storage.backend import Backend


class FakeContext:
    def __init__(self, md: tuple[tuple[str, str], ...] = (), cn: str | None = None) -> None:
        self.md, self.cn = md, cn

    def invocation_metadata(self) -> Any:
        return self.md

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [self.cn.encode()]} if self.cn else {}


@pytest.fixture
def gate(tmp_path: Path) -> tuple[AuthGate, AuthStore, SimpleTokens, list[bool]]:
    store = AuthStore(Backend.open(tmp_path / "db", initial_revision=1))
    with store.backend.write_txn() as w:
        for r in (rpc_pb2.AuthUserAddRequest(name="root", hashedPassword=hash_password("p")),
                  rpc_pb2.AuthRoleAddRequest(name="root"),
                  rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"),
                  rpc_pb2.AuthUserAddRequest(name="bob", hashedPassword=hash_password("p"))):
            store.apply(r)
        w.end(1)
    tokens = SimpleTokens(300, lambda: 0.0)
    cert = [False]
    return AuthGate(lambda: store, lambda: tokens, lambda: cert[0]), store, tokens, cert


def test_nothing_is_looked_at_while_auth_is_off(gate: Any) -> None:
    g, _, _, _ = gate
    ctx: Any = FakeContext((("token", "garbage"),))
    assert g.info(ctx) is None and g.require(ctx) is None
    g.admin(ctx)


def test_tokens_certificates_and_refusals(gate: Any) -> None:
    g, store, tokens, cert = gate
    with store.backend.write_txn() as w:
        store.apply(rpc_pb2.AuthEnableRequest())
        w.end(2)
    tok = tokens.assign("bob", "abc", 9)
    ctx: Any = FakeContext((("token", tok),))
    assert g.info(ctx) == AuthInfo("bob", store.revision)
    assert token_metadata(ctx) == (("token", tok),)
    with pytest.raises(errors.PermissionDenied):
        g.admin(ctx)
    with pytest.raises(errors.InvalidAuthToken):
        g.info(FakeContext((("authorization", "Bearer nope.1"),)))  # type: ignore[arg-type]
    anon: Any = FakeContext(cn="root")
    with pytest.raises(errors.UserEmpty):
        g.require(anon)  # a certificate names nobody without --client-cert-auth
    cert[0] = True
    assert g.info(anon) == AuthInfo("root", store.revision)
    g.admin(anon)
    assert g.info(FakeContext((("token", tok),), cn="root")) == AuthInfo(  # type: ignore[arg-type]
        "bob", store.revision)  # a token wins over the certificate

    async def served() -> str:
        return "served"

    with pytest.raises(errors.PermissionDenied):
        asyncio.run(g.serialized(ctx, lambda ai: store.check_range(ai, b"k"), served))
