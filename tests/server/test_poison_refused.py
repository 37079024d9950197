"""Regression (issue 11, defect 1): a request the apply path cannot handle never reaches
the log. The poison txn once made every member exit with KeyError in mvcc/kv.py, and
again on each restart while replaying the entry."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.server import kvclient
from tests.support.etcd import Cluster

pytestmark = pytest.mark.slow  # real raftkv processes

pb = rpc_pb2


def _poison() -> rpc_pb2.TxnRequest:
    put = pb.RequestOp(request_put=pb.PutRequest(key=b"a", value=b"2"))
    rng = pb.RequestOp(request_range=pb.RangeRequest(key=b"a", sort_target=99))  # type: ignore[arg-type]
    return pb.TxnRequest(success=[put, rng])


async def _call(url: str, method: str, request: object) -> grpc.aio.AioRpcError | None:
    async with grpc.aio.insecure_channel(kvclient.target(url)) as ch:
        try:
            await getattr(rpc_pb2_grpc.KVStub(ch), method)(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


def test_poison_txn_is_refused_and_every_member_stays_up(raftkv3: Cluster) -> None:
    c = raftkv3
    url = c.members[0].client_url
    asyncio.run(kvclient.put(url, b"a", b"1"))
    refusals = [
        ("Txn", _poison()),
        ("Range", pb.RangeRequest(key=b"a", sort_target=99, serializable=True)),  # type: ignore[arg-type]
        ("Range", pb.RangeRequest(key=b"a", sort_order=-1)),  # type: ignore[arg-type]
    ]
    for method, req in refusals:
        exc = asyncio.run(_call(url, method, req))
        assert exc is not None, f"{method} {req} was accepted"
        assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT, exc
        assert exc.details() == "etcdserver: invalid sort option", exc
    for m in c.members:
        assert m.proc is not None and m.proc.alive(), f"{m.name} exited:\n{c.logs()}"
    rev = asyncio.run(kvclient.put(url, b"after", b"ok"))
    for m in c.members:
        got = asyncio.run(kvclient.get_prefix(m.client_url, b"a", serializable=False))
        assert got[b"a"][0] == b"1", f"the refused txn wrote on {m.name}: {got}"
        assert got[b"after"] == (b"ok", rev)
