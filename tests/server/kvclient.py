"""A minimal etcd KV client over raw gRPC for server tests (one channel per endpoint)."""

from __future__ import annotations

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc


def target(url: str) -> str:
    return url.removeprefix("http://")


async def put(url: str, key: bytes, value: bytes, timeout: float = 5.0) -> int:
    async with grpc.aio.insecure_channel(target(url)) as ch:
        resp = await rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=value),
                                                 timeout=timeout)
        return int(resp.header.revision)


async def get_prefix(url: str, prefix: bytes, serializable: bool = True,
                     timeout: float = 5.0) -> dict[bytes, tuple[bytes, int]]:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    async with grpc.aio.insecure_channel(target(url)) as ch:
        resp = await rpc_pb2_grpc.KVStub(ch).Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=end, serializable=serializable),
            timeout=timeout)
        return {kv.key: (kv.value, kv.mod_revision) for kv in resp.kvs}


async def put_retry(url: str, key: bytes, value: bytes, attempts: int = 5) -> int:
    """Put, retrying while the cluster elects a leader (re-putting the same value is
    harmless for these tests)."""
    for i in range(attempts):
        try:
            return await put(url, key, value)
        except grpc.aio.AioRpcError as exc:
            if i == attempts - 1 or exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                                        grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
    raise AssertionError("unreachable")
