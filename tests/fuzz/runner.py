"""Run a fuzz stream against a cluster and judge the cluster afterwards.

``run_stream`` sends each op of a :mod:`tests.fuzz.generator` stream, one at a time, to
the member it names and records the gRPC status code (and details) it got. Member index 0
is the leader at the time, 1.. the followers in ID order, so "send to the leader" means
the same on raftkv and on etcd. ``check_cluster`` is the fuzzer's verdict on one server:
no member exited, a plain write succeeds afterwards, and every member holds the same
keys, values and revisions at the same applied index.

Invariant: every channel opened here is closed before the coroutine returns or raises.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.fuzz.generator import Ctx, Op
from tests.support.etcd import Cluster

pb = rpc_pb2
OPTIONS = [("grpc.max_receive_message_length", 256 << 20),
           ("grpc.max_send_message_length", 256 << 20)]
STUBS = {"KV": rpc_pb2_grpc.KVStub, "Lease": rpc_pb2_grpc.LeaseStub,
         "Cluster": rpc_pb2_grpc.ClusterStub, "Maintenance": rpc_pb2_grpc.MaintenanceStub}


@dataclass(frozen=True)
class Outcome:
    code: str  # "OK" or a grpc.StatusCode name
    details: str = ""

    def __str__(self) -> str:
        return self.code if self.code == "OK" else f"{self.code} ({self.details})"


@dataclass(frozen=True)
class Sent:
    """One op as sent: the request (built for this cluster), its outcome and a log line."""

    op: Op
    request: Any
    outcome: Outcome
    line: str


class Conn:
    """One channel (and stubs) per member endpoint."""

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints
        self.channels = [grpc.aio.insecure_channel(e.removeprefix("http://"), options=OPTIONS)
                         for e in endpoints]

    def stub(self, member: int, service: str) -> Any:
        return STUBS[service](self.channels[member])

    async def close(self) -> None:
        await asyncio.gather(*(ch.close() for ch in self.channels))

    async def status(self, member: int, timeout: float = 2.0) -> rpc_pb2.StatusResponse:
        return await self.stub(member, "Maintenance").Status(pb.StatusRequest(), timeout=timeout)


async def call(conn: Conn, member: int, op: Op, request: Any, timeout: float) -> tuple[
        Outcome, Any]:
    stub = conn.stub(member, op.service)
    try:
        if op.method == "LeaseKeepAlive":
            resp = None
            async for r in stub.LeaseKeepAlive(iter([request]), timeout=timeout):
                resp = r
                break
        else:
            resp = await getattr(stub, op.method)(request, timeout=timeout)
        return Outcome("OK"), resp
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code().name, exc.details() or ""), None


async def leader_order(conn: Conn, timeout: float = 30.0) -> tuple[list[int], list[int]]:
    """(endpoint indices with the leader first, their member IDs), once every member agrees
    on one leader."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            sts = [await conn.status(i) for i in range(len(conn.endpoints))]
            leaders = {s.leader for s in sts}
            ids = [s.header.member_id for s in sts]
            if len(leaders) == 1 and (lead := leaders.pop()) in ids:
                order = sorted(range(len(ids)), key=lambda i: (ids[i] != lead, ids[i]))
                return order, [ids[i] for i in order]
            last = leaders
        except grpc.aio.AioRpcError as exc:
            last = exc.details()
        if time.monotonic() > deadline:
            raise TimeoutError(f"members agree on no leader (last: {last})")
        await asyncio.sleep(0.1)  # polling an election, not a fixed wait


async def peer_urls(conn: Conn, ids: list[int]) -> list[str]:
    resp = await conn.stub(0, "Cluster").MemberList(pb.MemberListRequest(), timeout=5)
    by_id = {m.ID: m.peerURLs[0] for m in resp.members if m.peerURLs}
    return [by_id.get(i, "") for i in ids]


async def membership_ready(conn: Conn, ctx: Ctx, timeout: float = 30.0) -> None:
    """Wait until membership changes are judged on their merits: etcd refuses every
    MemberAdd with "unhealthy cluster" until its members have been connected for 5 s.
    The probe re-adds an existing peer URL, which is refused without changing anything."""
    deadline = time.monotonic() + timeout
    probe = pb.MemberAddRequest(peerURLs=[ctx.peer_urls[0]])
    while True:
        try:
            await conn.stub(0, "Cluster").MemberAdd(probe, timeout=5)
            raise AssertionError("re-adding an existing peer URL was accepted")
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"membership changes still refused: {exc.details()}") from exc
        await asyncio.sleep(0.2)  # polling etcd's health interval, not a fixed wait


async def run_stream(endpoints: list[str], ops: list[Op], timeout: float = 10.0) -> list[Sent]:
    conn = Conn(endpoints)
    try:
        order, ids = await leader_order(conn)
        ctx = Ctx(member_ids=ids, peer_urls=await peer_urls(conn, ids))
        await membership_ready(conn, ctx)
        out: list[Sent] = []
        for op in ops:
            request = op.build(ctx)
            outcome, resp = await call(conn, order[op.member], op, request, timeout)
            out.append(Sent(op, request, outcome, f"{op.describe(ctx)} => {outcome}"))
            if op.method == "MemberAdd" and resp is not None:
                ctx.added.append(resp.member.ID)
            if op.method == "MoveLeader" and outcome.code == "OK":
                order, ids = await leader_order(conn)
                ctx.member_ids = ids
                ctx.peer_urls = await peer_urls(conn, ids)
        return out
    finally:
        await conn.close()


# --- the verdict on one cluster -------------------------------------------------------------

Dump = tuple[int, list[tuple[bytes, bytes, int, int, int, int]]]


async def dump(conn: Conn, member: int) -> Dump:
    resp = await conn.stub(member, "KV").Range(
        pb.RangeRequest(key=b"\0", range_end=b"\0", serializable=True), timeout=30)
    return resp.header.revision, [(kv.key, kv.value, kv.create_revision, kv.mod_revision,
                                   kv.version, kv.lease) for kv in resp.kvs]


async def converged_state(endpoints: list[str], timeout: float = 60.0) -> Dump:
    """Every member's keyspace at one applied index, once they agree; raises with the
    difference if they do not within ``timeout``."""
    conn = Conn(endpoints)
    try:
        deadline = time.monotonic() + timeout
        problem = ""
        while True:
            try:
                before = [(await conn.status(i)).raftAppliedIndex for i in range(len(endpoints))]
                dumps = [await dump(conn, i) for i in range(len(endpoints))]
                after = [(await conn.status(i)).raftAppliedIndex for i in range(len(endpoints))]
                if before == after and len(set(before)) == 1:
                    if all(d == dumps[0] for d in dumps):
                        return dumps[0]
                    problem = describe_difference(dumps, before)
                else:
                    problem = f"applied indexes {before} -> {after}"
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"members did not converge: {problem}")
            await asyncio.sleep(0.2)  # polling replication, not a fixed wait
    finally:
        await conn.close()


def describe_difference(dumps: list[Dump], applied: list[int]) -> str:
    lines = [f"at applied index {applied[0]}:"]
    for i, (rev, kvs) in enumerate(dumps):
        lines.append(f"  m{i}: revision {rev}, {len(kvs)} keys")
    base = dict((kv[0], kv[1:]) for kv in dumps[0][1])
    for i, (_, kvs) in enumerate(dumps[1:], 1):
        other = dict((kv[0], kv[1:]) for kv in kvs)
        for k in sorted(set(base) | set(other))[:2000]:
            if base.get(k) != other.get(k):
                lines.append(f"  key {k[:40]!r}: m0 {_short(base.get(k))} m{i} "
                             f"{_short(other.get(k))}")
    return "\n".join(lines[:40])


def _short(v: tuple[Any, ...] | None) -> str:
    if v is None:
        return "absent"
    return f"(value {len(v[0])}B, create {v[1]}, mod {v[2]}, version {v[3]}, lease {v[4]})"


async def plain_write(endpoints: list[str], timeout: float = 30.0) -> int:
    """A plain Put succeeds (retrying only while the cluster elects a leader)."""
    conn = Conn(endpoints)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = await conn.stub(0, "KV").Put(
                    pb.PutRequest(key=b"fuzz/after", value=b"ok"), timeout=5)
                return int(resp.header.revision)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)  # waiting for an election
    finally:
        await conn.close()


def exited(cluster: Cluster) -> list[str]:
    return [m.name for m in cluster.members if m.proc is None or not m.proc.alive()]


async def check_cluster(cluster: Cluster) -> Dump:
    """The fuzzer's pass condition on one cluster; returns the converged keyspace."""
    gone = exited(cluster)
    assert not gone, f"members exited: {gone}\n{cluster.logs()}"
    await plain_write(cluster.endpoints)
    state = await converged_state(cluster.endpoints)
    gone = exited(cluster)
    assert not gone, f"members exited: {gone}\n{cluster.logs()}"
    return state
