"""The replicated command: what a Raft entry carries for the KV state machine.

An entry's data is ``u8 version | u8 kind | u64 request id | protobuf request`` where the
request is etcd's own message (PutRequest, TxnRequest...). Decoding validates the
version and kind and lets protobuf parse the rest; malformed bytes raise
:class:`CommandError`. Never pickle.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aetcd.rpc import rpc_pb2
from google.protobuf.message import DecodeError as ProtoDecodeError

VERSION = 1
_HDR = struct.Struct(">BBQ")


class Kind(IntEnum):
    PUT = 1
    DELETE_RANGE = 2
    TXN = 3
    COMPACT = 4
    LEASE_GRANT = 5
    LEASE_REVOKE = 6
    PUBLISH = 7  # a member's name and client URLs, as etcd's publish


_TYPES: dict[Kind, Any] = {
    Kind.PUT: rpc_pb2.PutRequest,
    Kind.DELETE_RANGE: rpc_pb2.DeleteRangeRequest,
    Kind.TXN: rpc_pb2.TxnRequest,
    Kind.COMPACT: rpc_pb2.CompactionRequest,
    Kind.LEASE_GRANT: rpc_pb2.LeaseGrantRequest,
    Kind.LEASE_REVOKE: rpc_pb2.LeaseRevokeRequest,
    Kind.PUBLISH: rpc_pb2.Member,
}


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    kind: Kind
    request_id: int
    request: Any  # the protobuf request message for ``kind``

    def encode(self) -> bytes:
        body: bytes = self.request.SerializeToString()
        return _HDR.pack(VERSION, self.kind, self.request_id) + body


def kind_of(request: Any) -> Kind:
    for k, t in _TYPES.items():
        if isinstance(request, t):
            return k
    raise CommandError(f"no command kind for {type(request).__name__}")


def decode(buf: bytes) -> Command:
    if len(buf) < _HDR.size:
        raise CommandError("command shorter than its header")
    version, kind, rid = _HDR.unpack_from(buf)
    if version != VERSION:
        raise CommandError(f"unsupported command version {version}")
    try:
        k = Kind(kind)
    except ValueError:
        raise CommandError(f"unknown command kind {kind}") from None
    msg = _TYPES[k]()
    try:
        msg.ParseFromString(buf[_HDR.size :])
    except ProtoDecodeError as exc:
        raise CommandError(f"malformed {k.name} request: {exc}") from None
    return Command(k, rid, msg)
