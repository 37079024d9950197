"""Thin asyncio access to the etcd v3 gRPC API (aetcd's generated stubs over grpc.aio).

Used by the workload, the nemesis and the final reads. Channels reconnect fast (100-500
ms backoff) so a restarted member is used again quickly. Errors are classified by
:func:`classify`: only a status that proves the request was not applied is ``failed``.
"""

from __future__ import annotations

import grpc
from aetcd import rpc

from tests.e2e.history.history import KV, Status

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),  # a transparent retry would hide a maybe-applied write
]

# Codes that mean the server rejected the request before applying it (its contents or
# preconditions, or etcd's admission limits). Everything else, including UNAVAILABLE
# (the request may have reached a member before the connection died) and
# DEADLINE_EXCEEDED, leaves a write unknown.
DEFINITELY_NOT_APPLIED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def classify(exc: BaseException) -> tuple[Status, str]:
    """Status of an operation that raised ``exc``, and a short reason."""
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        text = f"{code.name}: {exc.details()}"
        return (Status.FAILED if code in DEFINITELY_NOT_APPLIED else Status.UNKNOWN), text
    if isinstance(exc, TimeoutError):
        return Status.UNKNOWN, "client timeout"
    return Status.UNKNOWN, f"{type(exc).__name__}: {exc}"


def channel(endpoint: str) -> grpc.aio.Channel:
    target = endpoint.removeprefix("http://")
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


def to_kv(kv: rpc.KeyValue) -> KV:
    return KV(kv.key.decode(), kv.value.decode(), kv.mod_revision, kv.create_revision,
              kv.version, kv.lease)


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def status(endpoint: str, timeout: float = 1.0) -> rpc.StatusResponse:
    ch = channel(endpoint)
    try:
        return await rpc.MaintenanceStub(ch).Status(rpc.StatusRequest(), timeout=timeout)
    finally:
        await ch.close()


async def member_list(endpoint: str, timeout: float = 2.0) -> list[rpc.Member]:
    ch = channel(endpoint)
    try:
        resp = await rpc.ClusterStub(ch).MemberList(rpc.MemberListRequest(), timeout=timeout)
        return list(resp.members)
    finally:
        await ch.close()


async def member_remove(endpoint: str, member_id: int, timeout: float = 5.0) -> None:
    ch = channel(endpoint)
    try:
        await rpc.ClusterStub(ch).MemberRemove(rpc.MemberRemoveRequest(ID=member_id),
                                               timeout=timeout)
    finally:
        await ch.close()


async def member_add(endpoint: str, peer_url: str, timeout: float = 5.0) -> int:
    ch = channel(endpoint)
    try:
        resp = await rpc.ClusterStub(ch).MemberAdd(
            rpc.MemberAddRequest(peerURLs=[peer_url]), timeout=timeout)
        return int(resp.member.ID)
    finally:
        await ch.close()


async def range_all(endpoint: str, prefix: bytes, serializable: bool,
                    timeout: float = 2.0) -> rpc.RangeResponse:
    ch = channel(endpoint)
    try:
        return await rpc.KVStub(ch).Range(
            rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix),
                             serializable=serializable), timeout=timeout)
    finally:
        await ch.close()
