"""Who is asking: the API side of etcd's auth (AuthInfoFromCtx, requireAuthInfo,
isPermitted and doSerialize), for the gRPC services.

A call names its user by a simple token in gRPC metadata ``token`` (or ``authorization``,
with or without ``Bearer ``, as etcd's gateway sends it). While auth is off nothing is
looked at. While it is on, an unknown or expired token is "invalid auth token", no token is
nobody (AuthInfo revision 0, which every permission check refuses with "user name is
empty"), and a known token is its user at this member's current auth revision. Writes carry
that user and revision into the log and are checked at apply; reads are checked here,
before and (for the revision) after they are served, so a read that raced an auth change is
refused with "auth old revision", as etcd's doSerialize does.

With ``--client-cert-auth``, a call without a token is the user named by the common name
of its verified client certificate (etcd's AuthInfoFromTLS); a token, when given, wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from raftkv.mvcc import errors
from raftkv.mvcc.auth import AuthInfo, AuthStore
from raftkv.server.tokens import SimpleTokens

T = TypeVar("T")
TOKEN_KEYS = ("token", "authorization")


def token_of(context: grpc.aio.ServicerContext) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k in TOKEN_KEYS:
            return str(v).removeprefix("Bearer ")
    return None


def cert_user(context: grpc.aio.ServicerContext) -> str | None:
    """The common name of the caller's verified client certificate, if any."""
    try:
        names = context.auth_context().get("x509_common_name") or []
    except (AttributeError, ValueError):
        return None
    return names[0].decode() if names else None


def token_metadata(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str], ...]:
    """The caller's token, to pass on with a request forwarded to the leader."""
    tok = token_of(context)
    return (("token", tok),) if tok is not None else ()


class AuthGate:
    def __init__(self, store: Callable[[], AuthStore], tokens: Callable[[], SimpleTokens],
                 cert_auth: Callable[[], bool] = lambda: False) -> None:
        self._store = store
        self._tokens = tokens
        self._cert_auth = cert_auth  # --client-cert-auth: a certificate's CN is a user

    @property
    def store(self) -> AuthStore:
        return self._store()

    def info(self, context: grpc.aio.ServicerContext) -> AuthInfo | None:
        """etcd's AuthInfoFromCtx: None while auth is off or when no token is given."""
        store = self._store()
        if not store.enabled:
            return None
        tok = token_of(context)
        if tok is None:
            cn = cert_user(context) if self._cert_auth() else None
            return AuthInfo(cn, store.revision) if cn else None
        user = self._tokens().user_of(tok)
        if user is None:
            raise errors.InvalidAuthToken()
        return AuthInfo(user, store.revision)

    def who(self, context: grpc.aio.ServicerContext) -> AuthInfo:
        """As ``info``, nobody (revision 0) instead of None."""
        return self.info(context) or AuthInfo()

    def require(self, context: grpc.aio.ServicerContext) -> AuthInfo | None:
        """etcd's requireAuthInfo: with auth on, some user must be named."""
        ai = self.info(context)
        if self._store().enabled and ai is None:
            raise errors.UserEmpty()
        return ai

    def admin(self, context: grpc.aio.ServicerContext) -> None:
        """etcd's isPermitted: a root user (anyone while auth is off)."""
        self._store().check_admin(self.info(context))

    async def serialized(self, context: grpc.aio.ServicerContext,
                         check: Callable[[AuthInfo], None],
                         get: Callable[[], Awaitable[T]]) -> T:
        """etcd's doSerialize: check, serve, then refuse if the auth store moved meanwhile."""
        ai = self.who(context)
        check(ai)
        result = await get()
        if ai.revision and ai.revision != self._store().revision:
            raise errors.AuthOldRevision()
        return result


