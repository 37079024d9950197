"""One lock client of the fencing demo, run as its own process so the demo can pause it
with SIGSTOP: ``python -m raftkv.demo.lockclient --endpoint H:P --prefix P --name N``.

It takes an ``etcdctl lock``-style lock (etcd's concurrency.Mutex recipe): grant a lease
of ``--ttl`` seconds and keep it alive; create ``<prefix>lock/<lease id>`` bound to the
lease, by a Txn that creates it only if absent; its create_revision is the fencing
token; the lock is held once no key under ``<prefix>lock/`` has a lower create_revision.
It prints ``{"event": "locked", "token": N, "key": ..., "ttl": granted TTL}`` on stdout,
then waits for a line on stdin and writes ``--value`` to the protected key ``<prefix>data``:

- fenced (default): one Txn compares the token with the highest token the store has
  seen (``<prefix>max-token``, zero-padded so byte order is number order); a higher
  token is recorded and the write applied, an equal one applied, a lower one refused;
- ``--unfenced``: a plain Put, as a client that trusts its lock does.

It then prints ``{"event": "wrote", "accepted": bool, "detail": ...}`` and exits 0. Like a
real client after a long GC pause, it does not look at its lease before writing: it
believes it still holds the lock. Errors are one JSON line with ``"event": "error"``
and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

TOKEN_DIGITS = 20
POLL_S = 0.02  # how often a waiter looks again whether the holder before it is gone


def pad(token: int) -> bytes:
    return b"%0*d" % (TOKEN_DIGITS, token)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def fenced_write(prefix: bytes, token: int, value: bytes) -> rpc_pb2.TxnRequest:
    """The fenced write: apply if ``token`` >= the highest token seen; record a higher one."""
    max_key, data_key = prefix + b"max-token", prefix + b"data"
    cmp = rpc_pb2.Compare
    equal = rpc_pb2.TxnRequest(
        compare=[cmp(key=max_key, target=cmp.VALUE, result=cmp.EQUAL, value=pad(token))],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=data_key, value=value))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=max_key))])
    return rpc_pb2.TxnRequest(
        compare=[cmp(key=max_key, target=cmp.VALUE, result=cmp.LESS, value=pad(token))],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=max_key, value=pad(token))),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=data_key, value=value)),
        ],
        failure=[rpc_pb2.RequestOp(request_txn=equal)])


async def keep_alive(lease: rpc_pb2_grpc.LeaseStub, lease_id: int, ttl: int) -> None:
    async def requests() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
        while True:
            yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
            await asyncio.sleep(ttl / 3)  # the keep-alive period, as etcd's client

    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
        async for _ in lease.LeaseKeepAlive(requests()):
            pass


async def acquire(kv: rpc_pb2_grpc.KVStub, lock_prefix: bytes, lease_id: int) -> tuple[int, bytes]:
    key = lock_prefix + b"%016x" % lease_id
    cmp = rpc_pb2.Compare
    resp = await kv.Txn(rpc_pb2.TxnRequest(
        compare=[cmp(key=key, target=cmp.CREATE, result=cmp.EQUAL, create_revision=0)],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, lease=lease_id))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))]), timeout=5)
    token = (resp.header.revision if resp.succeeded
             else resp.responses[0].response_range.kvs[0].create_revision)
    while True:
        # as etcd's waitDeletes: the newest key created before ours (count ignores filters)
        older = await kv.Range(rpc_pb2.RangeRequest(
            key=lock_prefix, range_end=prefix_end(lock_prefix), max_create_revision=token - 1,
            sort_order=rpc_pb2.RangeRequest.DESCEND, sort_target=rpc_pb2.RangeRequest.CREATE,
            limit=1, keys_only=True), timeout=5)
        if not older.kvs:
            return int(token), key
        await asyncio.sleep(POLL_S)


async def run(ns: argparse.Namespace) -> int:
    prefix = ns.prefix.encode()
    async with grpc.aio.insecure_channel(ns.endpoint) as ch:
        kv, lease = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.LeaseStub(ch)
        granted = await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ns.ttl), timeout=5)
        alive = asyncio.create_task(keep_alive(lease, granted.ID, ns.ttl))
        token, key = await acquire(kv, prefix + b"lock/", granted.ID)
        emit(event="locked", name=ns.name, token=token, key=key.decode(), ttl=granted.TTL)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        value = ns.value.encode()
        if ns.unfenced:
            await kv.Put(rpc_pb2.PutRequest(key=prefix + b"data", value=value), timeout=5)
            emit(event="wrote", name=ns.name, accepted=True, detail="plain put, no token check")
        else:
            resp = await kv.Txn(fenced_write(prefix, token, value), timeout=5)
            nested = resp.responses[0].response_txn if not resp.succeeded else None
            if resp.succeeded or (nested is not None and nested.succeeded):
                emit(event="wrote", name=ns.name, accepted=True,
                     detail=f"token {token} is the highest seen")
            else:
                assert nested is not None
                kvs = nested.responses[0].response_range.kvs
                why = (f"token {token} < highest token seen {int(kvs[0].value)}" if kvs
                       else f"no {(prefix + b'max-token').decode()} to compare with")
                emit(event="wrote", name=ns.name, accepted=False, detail=why)
        alive.cancel()
        with contextlib.suppress(grpc.aio.AioRpcError):
            await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key), timeout=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raftkv.demo.lockclient")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--ttl", type=int, default=2)
    p.add_argument("--unfenced", action="store_true")
    ns = p.parse_args(argv)
    try:
        return asyncio.run(run(ns))
    except (grpc.aio.AioRpcError, IndexError, ValueError) as exc:
        emit(event="error", name=ns.name, detail=str(exc).splitlines()[0])
        return 1


if __name__ == "__main__":
    sys.exit(main())
