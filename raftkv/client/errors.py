"""Errors the etcd client raises, each classified into a kind a user can act on.

Invariant: every failure that leaves :mod:`raftkv.client` is an :class:`EtcdError` whose
``kind`` says what went wrong in terms of the endpoint (unreachable, TLS failure, not an
etcd client port, timeout, an auth refusal, or an error etcd itself returned);
``str(error)`` is one line.
TLS failures have one kind per cause a user fixes differently (unknown CA, client
certificate required or rejected, hostname mismatch, expired; ``TLS`` for the rest); the
cause is found by :mod:`raftkv.client.tlsprobe`, since grpc's text rarely names it.
"""

from __future__ import annotations

import enum

import grpc


class ErrorKind(enum.Enum):
    """What kind of failure an endpoint produced."""

    UNREACHABLE = "unreachable"
    TLS = "TLS failure"
    TLS_UNKNOWN_CA = "TLS failure (unknown CA)"
    TLS_CLIENT_CERT_REQUIRED = "TLS failure (client certificate required)"
    TLS_CLIENT_CERT_REJECTED = "TLS failure (client certificate rejected)"
    TLS_HOSTNAME_MISMATCH = "TLS failure (hostname mismatch)"
    TLS_EXPIRED = "TLS failure (certificate expired)"
    NOT_ETCD = "not an etcd client port"
    TIMEOUT = "timeout"
    AUTH_FAILED = "authentication failed"
    AUTH_REQUIRED = "authentication required"
    RPC = "etcd error"
    USAGE = "bad option"

    @property
    def is_tls(self) -> bool:
        return self.name.startswith("TLS")


class EtcdError(Exception):
    """A classified failure talking to one endpoint."""

    def __init__(
        self, kind: ErrorKind, endpoint: str, detail: str, closed: bool = False
    ) -> None:
        self.kind = kind
        self.endpoint = endpoint
        self.detail = " ".join(detail.split())  # one line, whatever grpc said
        # The server closed or reset the connection: a TLS-only or non-etcd listener does
        # that, and so does a member dying mid-call. The client tells them apart by dialing.
        self.closed = closed
        super().__init__(f"{endpoint}: {kind.value}: {self.detail}")


_TLS_WORDS = ("ssl", "tls", "handshake", "certificate", "x509", "wrong_version_number")
_NOT_ETCD_WORDS = (
    "http1.x", "http/1", "http status", "protocol error", "malformed", "parsing http/2",
    "settings frame",
)


_AUTH_FAILED = ("authentication failed", "invalid auth token")
_AUTH_REQUIRED = ("user name is empty",)


def _auth_error(code: grpc.StatusCode, detail: str, endpoint: str) -> EtcdError | None:
    """etcd's auth refusals a user fixes differently: wrong user or password (or a token
    that is no longer valid), and no user given while auth is on. Permission denied is
    not one: the user is known, their role lacks the right (an etcd error)."""
    if code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
        return None
    low = detail.lower()
    if any(w in low for w in _AUTH_FAILED):
        return EtcdError(ErrorKind.AUTH_FAILED, endpoint,
                         f"wrong user name or password ({detail})")
    if any(w in low for w in _AUTH_REQUIRED):
        return EtcdError(ErrorKind.AUTH_REQUIRED, endpoint,
                         f"the cluster has auth enabled; give --user (or DIAG_USER) ({detail})")
    return None


def classify(exc: BaseException, endpoint: str, tls: bool) -> EtcdError:
    """Turn a grpc (or socket) exception into an :class:`EtcdError`.

    grpc reports most transport failures as UNAVAILABLE; the detail text tells refused
    connections, TLS handshakes and HTTP/1 servers (an etcd peer port, a web server) apart.
    """
    if isinstance(exc, EtcdError):
        return exc
    if isinstance(exc, TimeoutError):
        return EtcdError(ErrorKind.TIMEOUT, endpoint, str(exc) or "timed out")
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        detail = exc.details() or code.name
        low = detail.lower()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return EtcdError(ErrorKind.TIMEOUT, endpoint, f"no answer in time ({detail})")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return EtcdError(ErrorKind.NOT_ETCD, endpoint,
                             f"the server lacks etcd's API ({detail})")
        if any(w in low for w in _NOT_ETCD_WORDS):
            return EtcdError(ErrorKind.NOT_ETCD, endpoint,
                             f"the port does not speak gRPC; is it a peer port? ({detail})")
        if any(w in low for w in _TLS_WORDS):
            return EtcdError(ErrorKind.TLS, endpoint, detail)
        if code == grpc.StatusCode.UNAVAILABLE:
            if tls and ("socket closed" in low or "connection reset" in low):
                return EtcdError(ErrorKind.TLS, endpoint,
                                 f"the server closed the TLS handshake ({detail})", closed=True)
            if "socket closed" in low or "connection reset" in low or "end of file" in low:
                return EtcdError(ErrorKind.NOT_ETCD, endpoint,
                                 f"the server closed the connection; it may expect TLS or "
                                 f"not be an etcd client port ({detail})", closed=True)
            return EtcdError(ErrorKind.UNREACHABLE, endpoint, detail)
        return (_auth_error(code, detail, endpoint)
                or EtcdError(ErrorKind.RPC, endpoint, f"{code.name}: {detail}"))
    if isinstance(exc, OSError):
        return EtcdError(ErrorKind.UNREACHABLE, endpoint, str(exc))
    return EtcdError(ErrorKind.RPC, endpoint, f"{type(exc).__name__}: {exc}")
