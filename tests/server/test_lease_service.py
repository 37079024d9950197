"""The Lease service on the leader (issue 11, defect 7), against a stand-in server.

- a keep-alive renews only after a ReadIndex barrier (applied caught up with commit,
  leadership confirmed), as etcd 3.5's LeaseRenew; if leadership moved meanwhile it is
  forwarded to the new leader instead of renewed here;
- time-to-live waits for the same barrier;
- a revoke is proposed whatever this member's (possibly lagging) lease table says: the
  apply path answers "not found" from the applied state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from aetcd.rpc import rpc_pb2

from raftkv.raft import StateType
from raftkv.server.authgate import AuthGate
from raftkv.server.services import LeaseService

pb = rpc_pb2


class Aborted(Exception):
    pass


class Context:
    async def abort(self, code: Any, details: str) -> None:
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()  # no token


class Leases:
    def __init__(self) -> None:
        self.ttls = {7: 60}
        self.renewed: list[int] = []

    def exists(self, lid: int) -> bool:
        return lid in self.ttls

    def renew(self, lid: int, now: float) -> int:
        self.renewed.append(lid)
        return self.ttls[lid]

    def remaining(self, lid: int, now: float) -> int:
        return self.ttls[lid]


class Server:
    def __init__(self) -> None:
        self.role = StateType.LEADER  # the soft state of the last Ready, as the facade's
        self.leases = Leases()
        self.backend = SimpleNamespace(current_revision=lambda: 5)
        self.request_timeout = 5.0
        self.barrier = asyncio.Event()
        self.barriers = 0
        self.proposed: list[Any] = []
        self.cleared: list[int] = []  # leases whose checkpoint a renewal cleared first
        # auth off: the gate names nobody and the store checks nothing
        self.auth_gate = AuthGate(lambda: SimpleNamespace(enabled=False),  # type: ignore[arg-type,return-value]
                                  lambda: None)  # type: ignore[arg-type,return-value]

    def is_leader(self) -> bool:
        return self.role is StateType.LEADER

    async def linearizable_barrier(self) -> None:
        self.barriers += 1
        await self.barrier.wait()

    def header(self, rev: int) -> rpc_pb2.ResponseHeader:
        return pb.ResponseHeader(revision=rev)

    async def propose(self, request: Any, auth: Any = None) -> Any:
        self.proposed.append(request)
        return pb.LeaseRevokeResponse()

    async def clear_lease_checkpoint(self, lid: int) -> None:
        self.cleared.append(lid)

    async def forward_metadata(self, caller: Any) -> Any:
        return caller  # auth off: the caller's metadata, unchanged (RaftServer's rule)


async def _one(*reqs: Any) -> AsyncIterator[Any]:
    for r in reqs:
        yield r


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_keepalive_renews_only_after_the_barrier() -> None:
    s = Server()
    svc = LeaseService(s)  # type: ignore[arg-type]
    stream = svc.LeaseKeepAlive(_one(pb.LeaseKeepAliveRequest(ID=7)), Context())
    nxt = asyncio.ensure_future(stream.__anext__())
    await _settle()
    assert s.barriers == 1 and s.leases.renewed == [] and not nxt.done()
    s.barrier.set()
    resp = await asyncio.wait_for(nxt, 5)
    assert (resp.ID, resp.TTL) == (7, 60) and s.leases.renewed == [7] and s.cleared == [7]


async def test_keepalive_is_forwarded_if_leadership_moved_during_the_barrier() -> None:
    s = Server()
    svc = LeaseService(s)  # type: ignore[arg-type]
    forwarded: list[int] = []

    async def forward(req: Any, metadata: Any = ()) -> Any:
        forwarded.append(req.ID)
        return pb.LeaseKeepAliveResponse(ID=req.ID, TTL=42)
    svc._forward_keepalive = forward  # type: ignore[method-assign]
    stream = svc.LeaseKeepAlive(_one(pb.LeaseKeepAliveRequest(ID=7)), Context())
    nxt = asyncio.ensure_future(stream.__anext__())
    await _settle()
    s.role = StateType.FOLLOWER
    s.barrier.set()
    resp = await asyncio.wait_for(nxt, 5)
    assert resp.TTL == 42 and forwarded == [7] and s.leases.renewed == []


async def test_time_to_live_waits_for_the_barrier() -> None:
    s = Server()
    svc = LeaseService(s)  # type: ignore[arg-type]
    call = asyncio.ensure_future(svc.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=7),
                                                     Context()))  # type: ignore[arg-type]
    await _settle()
    assert not call.done() and s.barriers == 1
    s.barrier.set()
    resp = await asyncio.wait_for(call, 5)
    assert (resp.TTL, resp.grantedTTL) == (60, 60)


async def test_revoke_is_proposed_even_if_the_local_table_lags() -> None:
    s = Server()
    svc = LeaseService(s)  # type: ignore[arg-type]
    req = pb.LeaseRevokeRequest(ID=99)  # granted, but not yet applied on this member
    assert not s.leases.exists(99)
    resp = await svc.LeaseRevoke(req, Context())  # type: ignore[arg-type]
    assert s.proposed == [req] and resp.header.revision == 5


@pytest.mark.parametrize("state", [StateType.FOLLOWER, StateType.CANDIDATE])
async def test_a_non_leader_renews_nothing_itself(state: StateType) -> None:
    s = Server()
    s.role = state
    svc = LeaseService(s)  # type: ignore[arg-type]

    async def forward(req: Any, metadata: Any = ()) -> Any:
        return pb.LeaseKeepAliveResponse(ID=req.ID, TTL=9)
    svc._forward_keepalive = forward  # type: ignore[method-assign]
    resp = await svc.LeaseKeepAlive(_one(pb.LeaseKeepAliveRequest(ID=7)),
                                    Context()).__anext__()
    assert resp.TTL == 9 and s.leases.renewed == [] and s.barriers == 0


async def test_a_failed_forward_keeps_the_leaders_code() -> None:
    """The leader's refusal (or an unreachable leader) reaches the client with its own
    code and text, not as gRPC's "Unexpected AioRpcError" (UNKNOWN)."""
    s = Server()
    s.role = StateType.FOLLOWER
    svc = LeaseService(s)  # type: ignore[arg-type]

    async def forward(req: Any, metadata: Any = ()) -> Any:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                   grpc.aio.Metadata(), details="the leader is away")
    svc._forward_keepalive = forward  # type: ignore[method-assign]
    with pytest.raises(Aborted) as got:
        await svc.LeaseKeepAlive(_one(pb.LeaseKeepAliveRequest(ID=7)), Context()).__anext__()
    assert got.value.args == (grpc.StatusCode.UNAVAILABLE, "the leader is away")
