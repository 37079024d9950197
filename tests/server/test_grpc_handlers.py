"""The client port's gRPC server resolves methods through generic handlers only
(``raftkv.server.embed.GenericHandlersOnly``): grpc.aio keeps one pending call future per
*registered* method and runs ``asyncio.wait`` over all of them for every incoming call, so
registering etcd's six services made each call pay for some forty futures. Measured by
counting what grpc.aio's own ``asyncio.wait`` calls are given, against the generated
registration as the control."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.server.embed import GenericHandlersOnly
from tests.support.proc import free_port

SERVICES = [
    (rpc_pb2_grpc.add_KVServicer_to_server, rpc_pb2_grpc.KVServicer),
    (rpc_pb2_grpc.add_MaintenanceServicer_to_server, rpc_pb2_grpc.MaintenanceServicer),
    (rpc_pb2_grpc.add_ClusterServicer_to_server, rpc_pb2_grpc.ClusterServicer),
    (rpc_pb2_grpc.add_LeaseServicer_to_server, rpc_pb2_grpc.LeaseServicer),
    (rpc_pb2_grpc.add_WatchServicer_to_server, rpc_pb2_grpc.WatchServicer),
    (rpc_pb2_grpc.add_AuthServicer_to_server, rpc_pb2_grpc.AuthServicer),
]


class KV(rpc_pb2_grpc.KVServicer):
    async def Range(self, request: Any, context: Any) -> rpc_pb2.RangeResponse:
        return rpc_pb2.RangeResponse(count=7)


async def _widest_wait(generic_only: bool, calls: int, monkeypatch: pytest.MonkeyPatch) -> int:
    widths: list[int] = []
    real_wait = asyncio.wait

    async def counting_wait(fs: Iterable[Any], **kw: Any) -> Any:
        fs = list(fs)
        widths.append(len(fs))
        return await real_wait(fs, **kw)

    server = grpc.aio.server()
    target = GenericHandlersOnly(server) if generic_only else server
    for add, servicer in SERVICES:
        add(KV() if servicer is rpc_pb2_grpc.KVServicer else servicer(), target)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    monkeypatch.setattr(asyncio, "wait", counting_wait)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            for _ in range(calls):
                assert (await kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=10)).count == 7
            with pytest.raises(grpc.aio.AioRpcError) as err:  # a known, unimplemented one
                await rpc_pb2_grpc.LeaseStub(ch).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=5),
                                                            timeout=10)
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
    assert widths, "grpc.aio's serving loop no longer calls asyncio.wait: re-measure"
    return max(widths)


async def test_generic_handlers_only_keep_one_pending_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _widest_wait(True, 20, monkeypatch) == 1


async def test_the_generated_registration_waits_on_every_method(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _widest_wait(False, 20, monkeypatch) > 30  # the control: what we avoid
