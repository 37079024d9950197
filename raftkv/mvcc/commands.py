"""The replicated command: what a Raft entry carries for the KV state machine.

An entry's data is ``u8 version=2 | u8 kind | u64 proposer member ID | u64 request ID |
protobuf request`` where the request is etcd's own message (PutRequest, TxnRequest...).
A request made by an authenticated user is version 3: after the request ID come ``u64 auth
revision | u16 user name length | user name (UTF-8)``, etcd's RequestHeader username and
auth_revision, which apply checks permissions against. Version 1 entries (no proposer
field) still decode, with proposer 0; version 2 ones with no user. Decoding validates
the version and kind and lets protobuf parse the rest; malformed bytes raise
:class:`CommandError`. Never pickle.

Invariant: (proposer, request ID) is unique across members and restarts: the proposer
is the full member ID and :class:`RequestIDs` starts each process above any ID an earlier
process of the same member can have used (wall-clock nanoseconds at start).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aetcd.rpc import rpc_pb2
from google.protobuf.message import DecodeError as ProtoDecodeError

VERSION = 2
VERSION_AUTH = 3
_HDR_V1 = struct.Struct(">BBQ")
_HDR = struct.Struct(">BBQQ")
_AUTH = struct.Struct(">QH")


class Kind(IntEnum):
    ALARM = 16  # a replicated alarm (CORRUPT), as etcd's AlarmRequest through the log
    PUT = 1
    DELETE_RANGE = 2
    TXN = 3
    COMPACT = 4
    LEASE_GRANT = 5
    LEASE_REVOKE = 6
    PUBLISH = 7  # a member's name and client URLs, as etcd's publish
    LEASE_CHECKPOINT = 8  # the leader's record of remaining TTLs, as etcd's
    # etcd's Auth service; AUTHENTICATE carries the user name and the new simple token's
    # random prefix in ``password`` (never the password: the API layer checked it)
    AUTH_ENABLE = 20
    AUTH_DISABLE = 21
    AUTHENTICATE = 22
    USER_ADD = 23
    USER_DELETE = 24
    USER_CHANGE_PASSWORD = 25
    USER_GRANT_ROLE = 26
    USER_REVOKE_ROLE = 27
    ROLE_ADD = 28
    ROLE_DELETE = 29
    ROLE_GRANT_PERMISSION = 30
    ROLE_REVOKE_PERMISSION = 31


_TYPES: dict[Kind, Any] = {
    Kind.ALARM: rpc_pb2.AlarmRequest,
    Kind.PUT: rpc_pb2.PutRequest,
    Kind.DELETE_RANGE: rpc_pb2.DeleteRangeRequest,
    Kind.TXN: rpc_pb2.TxnRequest,
    Kind.COMPACT: rpc_pb2.CompactionRequest,
    Kind.LEASE_GRANT: rpc_pb2.LeaseGrantRequest,
    Kind.LEASE_REVOKE: rpc_pb2.LeaseRevokeRequest,
    Kind.PUBLISH: rpc_pb2.Member,
    Kind.LEASE_CHECKPOINT: rpc_pb2.LeaseCheckpointRequest,
    Kind.AUTH_ENABLE: rpc_pb2.AuthEnableRequest,
    Kind.AUTH_DISABLE: rpc_pb2.AuthDisableRequest,
    Kind.AUTHENTICATE: rpc_pb2.AuthenticateRequest,
    Kind.USER_ADD: rpc_pb2.AuthUserAddRequest,
    Kind.USER_DELETE: rpc_pb2.AuthUserDeleteRequest,
    Kind.USER_CHANGE_PASSWORD: rpc_pb2.AuthUserChangePasswordRequest,
    Kind.USER_GRANT_ROLE: rpc_pb2.AuthUserGrantRoleRequest,
    Kind.USER_REVOKE_ROLE: rpc_pb2.AuthUserRevokeRoleRequest,
    Kind.ROLE_ADD: rpc_pb2.AuthRoleAddRequest,
    Kind.ROLE_DELETE: rpc_pb2.AuthRoleDeleteRequest,
    Kind.ROLE_GRANT_PERMISSION: rpc_pb2.AuthRoleGrantPermissionRequest,
    Kind.ROLE_REVOKE_PERMISSION: rpc_pb2.AuthRoleRevokePermissionRequest,
}


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    kind: Kind
    request_id: int
    request: Any  # the protobuf request message for ``kind``
    proposer: int = 0  # the member that proposed it (0 in version 1 entries)
    user: str = ""  # who asked, when auth is on (etcd's RequestHeader.username)
    auth_revision: int = 0  # the auth revision the user's token was checked at

    def encode(self) -> bytes:
        body: bytes = self.request.SerializeToString()
        if not self.user and not self.auth_revision:
            return _HDR.pack(VERSION, self.kind, self.proposer, self.request_id) + body
        name = self.user.encode()
        return (_HDR.pack(VERSION_AUTH, self.kind, self.proposer, self.request_id)
                + _AUTH.pack(self.auth_revision, len(name)) + name + body)


class RequestIDs:
    """Request IDs for one member process: strictly increasing, and above every ID an
    earlier process of this member used, because they start at the wall clock in
    nanoseconds (no member proposes a billion requests per second)."""

    MASK = (1 << 64) - 1

    def __init__(self, start_ns: int | None = None) -> None:
        self._next = (time.time_ns() if start_ns is None else start_ns) & self.MASK

    def next(self) -> int:
        self._next = (self._next + 1) & self.MASK
        return self._next


def kind_of(request: Any) -> Kind:
    for k, t in _TYPES.items():
        if isinstance(request, t):
            return k
    raise CommandError(f"no command kind for {type(request).__name__}")


def decode(buf: bytes) -> Command:
    if len(buf) < _HDR_V1.size:
        raise CommandError("command shorter than its header")
    version = buf[0]
    if version == 1:
        _, kind, rid = _HDR_V1.unpack_from(buf)
        proposer, size = 0, _HDR_V1.size
    elif version in (VERSION, VERSION_AUTH):
        if len(buf) < _HDR.size:
            raise CommandError("command shorter than its header")
        _, kind, proposer, rid = _HDR.unpack_from(buf)
        size = _HDR.size
    else:
        raise CommandError(f"unsupported command version {version}")
    try:
        k = Kind(kind)
    except ValueError:
        raise CommandError(f"unknown command kind {kind}") from None
    user, auth_rev = "", 0
    if version == VERSION_AUTH:
        if len(buf) < size + _AUTH.size:
            raise CommandError("command shorter than its auth header")
        auth_rev, n = _AUTH.unpack_from(buf, size)
        size += _AUTH.size
        if len(buf) < size + n:
            raise CommandError("command shorter than its user name")
        try:
            user = buf[size:size + n].decode()
        except UnicodeDecodeError:
            raise CommandError("user name is not UTF-8") from None
        size += n
    msg = _TYPES[k]()
    try:
        msg.ParseFromString(buf[size:])
    except ProtoDecodeError as exc:
        raise CommandError(f"malformed {k.name} request: {exc}") from None
    return Command(k, rid, msg, proposer, user, auth_rev)
