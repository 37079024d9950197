"""Concurrent clients on a small keyspace, each operation recorded with its outcome.

``clients`` asyncio tasks share one gRPC channel per endpoint; client ``i`` starts on
endpoint ``i mod n`` and moves to the next one after an error (as etcd's client
balancer would). The mix: get, range of the whole keyspace, put, delete,
compare-and-set (txn: value == expected ? put : get), two-key txn (value(k1) == expected
? put k1, put k2 : get k1, get k2), and puts with a lease each client granted itself.

Recording invariants: ``invoke`` is taken just before the RPC starts, ``complete`` just
after the response arrives; an operation gets ``ok`` only with a response, ``failed``
only for an error that proves it was not applied (:func:`etcdapi.classify`), otherwise
``unknown``. Values are unique (``c<client>.<seq>``). Reads are linearizable unless
``serializable`` says otherwise. The pace is bounded (``think`` seconds between a
client's operations) so a 2-core machine keeps up with members, proxies and clients.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from aetcd import rpc

from tests.e2e.history import etcdapi
from tests.e2e.history.history import KV, Act, Cmp, History, Op, Result, Status

PREFIX = "hk/"

DEFAULT_MIX = {"get": 18, "range": 7, "put": 24, "delete": 6, "cas": 20, "txn2": 12,
               "lease_put": 8}


@dataclass
class WorkloadConfig:
    clients: int = 6
    keys: int = 4
    timeout: float = 1.5
    think: float = 0.02
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    serializable: bool = False
    lease_ttl: int = 600


class Workload:
    def __init__(self, endpoints: list[str], seed: int, config: WorkloadConfig | None = None,
                 endpoint_for: Callable[[int], list[str]] | None = None) -> None:
        self.endpoints = endpoints
        self.config = config or WorkloadConfig()
        self.rng = random.Random(seed)
        self.history = History(seed=seed)
        self.keys = [f"{PREFIX}{i}" for i in range(self.config.keys)]
        self.last_seen: dict[str, str | None] = {}
        self._endpoint_for = endpoint_for
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._next_id = 0

    def _op(self, client: int, name: str, **kw: object) -> Op:
        op = Op(id=self._next_id, client=client, name=name, invoke=0, **kw)  # type: ignore[arg-type]
        self._next_id += 1
        self.history.ops.append(op)
        return op

    def _stub(self, endpoint: str) -> rpc.KVStub:
        ch = self._channels.get(endpoint)
        if ch is None:
            ch = self._channels[endpoint] = etcdapi.channel(endpoint)
        return rpc.KVStub(ch)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    async def run(self, stop: asyncio.Event) -> History:
        tasks = [asyncio.create_task(self._client(i, stop)) for i in range(self.config.clients)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.history

    # --- one client ---------------------------------------------------------------------

    async def _client(self, cid: int, stop: asyncio.Event) -> None:
        rng = random.Random(self.rng.random())
        eps = self._endpoint_for(cid) if self._endpoint_for else self.endpoints
        ep_index = cid % len(eps)
        seq = 0
        lease = 0
        kinds = list(self.config.mix)
        weights = [self.config.mix[k] for k in kinds]
        while not stop.is_set():
            seq += 1
            endpoint = eps[ep_index]
            kind = rng.choices(kinds, weights)[0]
            if kind == "lease_put" and lease == 0:
                lease = await self._grant(endpoint)
                if lease == 0:
                    ep_index = (ep_index + 1) % len(eps)
                    continue
            op = self._build(cid, seq, kind, rng, lease)
            op.endpoint = endpoint
            await self._execute(op, endpoint)
            if op.status is not Status.OK:
                ep_index = (ep_index + 1) % len(eps)
                await asyncio.sleep(rng.uniform(0.05, 0.15))  # back off as etcd clients do
            elif self.config.think:
                await asyncio.sleep(rng.uniform(0, 2 * self.config.think))  # pacing

    async def _grant(self, endpoint: str) -> int:
        try:
            resp = await rpc.LeaseStub(self._stub_channel(endpoint)).LeaseGrant(
                rpc.LeaseGrantRequest(TTL=self.config.lease_ttl), timeout=self.config.timeout)
            return int(resp.ID)
        except Exception:
            return 0

    def _stub_channel(self, endpoint: str) -> grpc.aio.Channel:
        self._stub(endpoint)
        return self._channels[endpoint]

    def _build(self, cid: int, seq: int, kind: str, rng: random.Random, lease: int) -> Op:
        key = rng.choice(self.keys)
        value = f"c{cid}.{seq}"
        ser = self.config.serializable
        if kind == "get":
            return self._op(cid, "get", success=[Act("get", key)], serializable=ser)
        if kind == "range":
            return self._op(cid, "range", success=[Act("range")], serializable=ser)
        if kind == "put":
            return self._op(cid, "put", success=[Act("put", key, value)])
        if kind == "lease_put":
            return self._op(cid, "lease_put", success=[Act("put", key, value, lease)])
        if kind == "delete":
            return self._op(cid, "delete", success=[Act("del", key)])
        expect = self.last_seen.get(key)
        if rng.random() < 0.2:
            expect = None if rng.random() < 0.5 else "no-such-value"
        if kind == "cas":
            return self._op(cid, "cas", compares=[Cmp(key, expect)],
                            success=[Act("put", key, value)], failure=[Act("get", key)])
        k2 = rng.choice([k for k in self.keys if k != key])
        return self._op(cid, "txn2", compares=[Cmp(key, expect)],
                        success=[Act("put", key, value + ".a"), Act("put", k2, value + ".b")],
                        failure=[Act("get", key), Act("get", k2)])

    # --- single operations, for scripted tests ------------------------------------------

    async def get(self, client: int, key: str, endpoint: str, serializable: bool = False) -> Op:
        op = self._op(client, "get", success=[Act("get", key)], serializable=serializable)
        await self.execute(op, endpoint)
        return op

    async def put(self, client: int, key: str, value: str, endpoint: str) -> Op:
        op = self._op(client, "put", success=[Act("put", key, value)])
        await self.execute(op, endpoint)
        return op

    # --- wire ---------------------------------------------------------------------------

    async def execute(self, op: Op, endpoint: str) -> None:
        """Run ``op`` against ``endpoint`` and record its times, status and results."""
        op.endpoint = endpoint
        await self._execute(op, endpoint)

    async def _execute(self, op: Op, endpoint: str) -> None:
        stub = self._stub(endpoint)
        timeout = self.config.timeout
        op.invoke = time.monotonic_ns()
        try:
            if op.compares or len(op.success) > 1:
                resp = await stub.Txn(_txn_request(op), timeout=timeout)
                op.revision = resp.header.revision
                op.succeeded = resp.succeeded
                op.results = [_txn_result(a, r) for a, r in zip(op.branch, resp.responses,
                                                                 strict=True)]
            else:
                act = op.success[0]
                op.revision, result = await _single(stub, act, op.serializable, timeout)
                op.results = [result]
            op.complete = time.monotonic_ns()
            op.status = Status.OK
            self._note(op)
        except Exception as exc:
            op.status, op.error = etcdapi.classify(exc)

    def _note(self, op: Op) -> None:
        """Remember values seen, so compare-and-set often names the current value."""
        for act, res in zip(op.branch, op.results, strict=False):
            if act.kind == "put":
                self.last_seen[act.key] = act.value
            elif act.kind == "del":
                self.last_seen[act.key] = None
            elif act.kind == "get":
                self.last_seen[act.key] = res.value if isinstance(res, KV) else None


def _key(k: str) -> bytes:
    return k.encode()


async def _single(stub: rpc.KVStub, act: Act, serializable: bool,
                  timeout: float) -> tuple[int, Result]:
    if act.kind == "get":
        r = await stub.Range(rpc.RangeRequest(key=_key(act.key), serializable=serializable),
                             timeout=timeout)
        return r.header.revision, (etcdapi.to_kv(r.kvs[0]) if r.kvs else None)
    if act.kind == "range":
        p = PREFIX.encode()
        r = await stub.Range(rpc.RangeRequest(key=p, range_end=etcdapi.prefix_end(p),
                                              serializable=serializable), timeout=timeout)
        return r.header.revision, [etcdapi.to_kv(kv) for kv in r.kvs]
    if act.kind == "put":
        p_resp = await stub.Put(rpc.PutRequest(key=_key(act.key), value=act.value.encode(),
                                               lease=act.lease), timeout=timeout)
        return p_resp.header.revision, None
    d = await stub.DeleteRange(rpc.DeleteRangeRequest(key=_key(act.key)), timeout=timeout)
    return d.header.revision, int(d.deleted)


def _request_op(act: Act) -> rpc.RequestOp:
    if act.kind == "get":
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=_key(act.key)))
    if act.kind == "put":
        return rpc.RequestOp(request_put=rpc.PutRequest(key=_key(act.key),
                                                        value=act.value.encode(),
                                                        lease=act.lease))
    if act.kind == "del":
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=_key(act.key)))
    raise ValueError(f"no txn form for {act.kind}")


def _compare(c: Cmp) -> rpc.Compare:
    if c.expect is None:
        return rpc.Compare(key=_key(c.key), target=rpc.Compare.CompareTarget.VERSION,
                           result=rpc.Compare.CompareResult.EQUAL, version=0)
    return rpc.Compare(key=_key(c.key), target=rpc.Compare.CompareTarget.VALUE,
                       result=rpc.Compare.CompareResult.EQUAL, value=c.expect.encode())


def _txn_request(op: Op) -> rpc.TxnRequest:
    return rpc.TxnRequest(compare=[_compare(c) for c in op.compares],
                          success=[_request_op(a) for a in op.success],
                          failure=[_request_op(a) for a in op.failure])


def _txn_result(act: Act, resp: rpc.ResponseOp) -> Result:
    if act.kind == "get":
        kvs = resp.response_range.kvs
        return etcdapi.to_kv(kvs[0]) if kvs else None
    if act.kind == "del":
        return int(resp.response_delete_range.deleted)
    return None
