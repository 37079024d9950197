"""etcd v3 gRPC services over a RaftServer: KV, Maintenance (Status, Alarm, Defragment,
MoveLeader) and
Cluster (member list, add, remove, promote, update) and Lease (grant, revoke, keep-alive,
time-to-live, leases).

Every error a client sees is an :class:`raftkv.mvcc.errors.EtcdError` mapped to etcd's
gRPC code and message in ``_fail``; every request is validated by
:mod:`raftkv.server.validate` before it is proposed or served, as etcd's v3rpc layer does,
so no entry the apply path cannot handle reaches the log. Top-level response headers
carry cluster ID, member ID, revision and raft term; nested txn responses carry only
their revision, as etcd's do.

Auth (etcd 3.6's rules, :mod:`raftkv.server.authgate`): writes carry the caller's user and
auth revision into the log (checked at apply); reads are checked here; Maintenance and
membership changes and Compact need a root user, Status and alarm listing need some user; lease
queries need the right to the lease's keys; a request forwarded to the leader (over TLS
when the leader's client URL is https, :mod:`raftkv.server.memberdial`) carries the
caller's token, or, for a caller named by its certificate's CN, this member's root token
(the follower checked the caller first).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, NoReturn

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import authcheck, errors, kv
from raftkv.server import maintenance, validate
from raftkv.server.authgate import token_metadata
from raftkv.server.config import ConfigError, member_id, parse_urls
from raftkv.server.memberdial import MemberDialer
from raftkv.server.membership import Member
from raftkv.server.raftserver import RaftServer


async def _fail(context: grpc.aio.ServicerContext, exc: errors.EtcdError) -> NoReturn:
    await context.abort(getattr(grpc.StatusCode, exc.code), exc.message)
    raise AssertionError("unreachable")


def _fill(server: RaftServer, resp: Any) -> Any:
    rev = resp.header.revision or server.backend.current_revision()
    resp.header.CopyFrom(server.header(rev))
    return resp


class KVService(rpc_pb2_grpc.KVServicer):
    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.gate = server.auth_gate

    async def Range(self, request: rpc_pb2.RangeRequest,
                    context: grpc.aio.ServicerContext) -> rpc_pb2.RangeResponse:
        try:
            validate.check_range(request)
            if not request.serializable:
                await self.s.linearizable_barrier()
            resp = await self.gate.serialized(
                context, lambda ai: self.gate.store.check_range(ai, request.key,
                                                                 request.range_end),
                lambda: self.s.range(request))
            return _fill(self.s, resp)
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def Put(self, request: rpc_pb2.PutRequest,
                  context: grpc.aio.ServicerContext) -> rpc_pb2.PutResponse:
        try:
            validate.check_put(request)
            validate.check_size(request, self.s.cfg.max_request_bytes)
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def DeleteRange(self, request: rpc_pb2.DeleteRangeRequest,
                          context: grpc.aio.ServicerContext) -> rpc_pb2.DeleteRangeResponse:
        try:
            validate.check_delete(request)
            validate.check_size(request, self.s.cfg.max_request_bytes)
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def Txn(self, request: rpc_pb2.TxnRequest,
                  context: grpc.aio.ServicerContext) -> rpc_pb2.TxnResponse:
        try:
            validate.check_txn(request, self.s.cfg.max_txn_ops)
            if kv.is_read_only(request):
                if not _all_serializable(request):
                    await self.s.linearizable_barrier()
                return _fill(self.s, await self.gate.serialized(
                    context, lambda ai: authcheck.check_txn(
                        self.gate.store, ai, self.s.leases, self.s.backend, request),
                    lambda: self._read_txn(request)))
            validate.check_size(request, self.s.cfg.max_request_bytes)
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def _read_txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return kv.txn(kv.Tx(self.s.backend, None), request, self.s.leases)

    async def Compact(self, request: rpc_pb2.CompactionRequest,
                      context: grpc.aio.ServicerContext) -> rpc_pb2.CompactionResponse:
        try:
            # etcd 3.6.16 refuses compaction to all but root (3.6.14 let any user compact)
            self.gate.admin(context)
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)


def _all_serializable(r: rpc_pb2.TxnRequest) -> bool:
    for op in (*r.success, *r.failure):
        which = op.WhichOneof("request")
        if which == "request_range" and not op.request_range.serializable:
            return False
        if which == "request_txn" and not _all_serializable(op.request_txn):
            return False
    return True


async def _leader_channel(server: RaftServer, dialer: MemberDialer) -> grpc.aio.Channel:
    """A client channel to the current leader's first client URL (TLS with this member's
    client-port credentials when the URL is https; a dialer per service: a channel
    belongs to the event loop that made it)."""
    m = server.membership.members.get(server.leader_id())
    if m is None or not m.client_urls:
        raise errors.NoLeader()
    try:
        return await dialer.channel(m.client_urls[0])
    except OSError:  # auto TLS: the leader's certificate could not be read
        raise errors.NoLeader() from None


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    """Also Snapshot, HashKV and Hash, whose work is :mod:`raftkv.server.maintenance`."""

    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.gate = server.auth_gate

    async def Status(self, request: rpc_pb2.StatusRequest,
                     context: grpc.aio.ServicerContext) -> rpc_pb2.StatusResponse:
        try:
            self.gate.require(context)
        except errors.EtcdError as exc:
            await _fail(context, exc)
        return self.s.status()

    async def Alarm(self, request: rpc_pb2.AlarmRequest,
                    context: grpc.aio.ServicerContext) -> rpc_pb2.AlarmResponse:
        """NOSPACE is this member's own; CORRUPT (raised by the corruption check) is
        replicated: disarming it goes through the log."""
        resp = rpc_pb2.AlarmResponse()
        try:
            validate.check_alarm(request)
            if request.action == rpc_pb2.AlarmRequest.GET:
                self.gate.require(context)
            else:
                self.gate.admin(context)
            if request.action == rpc_pb2.AlarmRequest.ACTIVATE:
                raise errors.NotCapable("etcdserver: alarms are raised by the server itself")
            if request.action == rpc_pb2.AlarmRequest.DEACTIVATE:
                if request.alarm in (rpc_pb2.NOSPACE, rpc_pb2.NONE) and self.s.nospace and (
                        request.memberID in (0, self.s.id)):
                    self.s.nospace = False
                    resp.alarms.add(memberID=self.s.id, alarm=rpc_pb2.NOSPACE)
                if any(request.alarm in (rpc_pb2.NONE, a) and request.memberID in (0, m)
                       for m, a in self.s.alarms()):
                    done = await self.s.propose(request, self.gate.info(context))
                    resp.alarms.extend(done.alarms)
            elif request.action == rpc_pb2.AlarmRequest.GET:
                if self.s.nospace:
                    resp.alarms.add(memberID=self.s.id, alarm=rpc_pb2.NOSPACE)
                for m, a in self.s.alarms():
                    if request.alarm in (rpc_pb2.NONE, a):
                        resp.alarms.add(memberID=m, alarm=a)
        except errors.EtcdError as exc:
            await _fail(context, exc)
        return _fill(self.s, resp)

    async def HashKV(self, request: rpc_pb2.HashKVRequest,
                     context: grpc.aio.ServicerContext) -> rpc_pb2.HashKVResponse:
        try:
            self.gate.admin(context)
            return await maintenance.hash_kv(self.s, request.revision)
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def Hash(self, request: rpc_pb2.HashRequest,
                   context: grpc.aio.ServicerContext) -> rpc_pb2.HashResponse:
        try:
            self.gate.admin(context)
        except errors.EtcdError as exc:
            await _fail(context, exc)
        return await maintenance.hash_all(self.s)

    async def Snapshot(self, request: rpc_pb2.SnapshotRequest,
                       context: grpc.aio.ServicerContext) -> Any:
        try:
            self.gate.admin(context)
            async for resp in maintenance.snapshot_stream(self.s):
                yield resp
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def MoveLeader(self, request: rpc_pb2.MoveLeaderRequest,
                         context: grpc.aio.ServicerContext) -> rpc_pb2.MoveLeaderResponse:
        try:
            self.gate.admin(context)
            if request.targetID != self.s.id or not self.s.is_leader():
                # (as etcd: moving leadership to the leader itself is done at once)
                await self.s.move_leader(request.targetID)
            return _fill(self.s, rpc_pb2.MoveLeaderResponse())
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def Defragment(self, request: rpc_pb2.DefragmentRequest,
                         context: grpc.aio.ServicerContext) -> rpc_pb2.DefragmentResponse:
        try:
            self.gate.admin(context)
        except errors.EtcdError as exc:
            await _fail(context, exc)
        await self.s.defragment()
        return _fill(self.s, rpc_pb2.DefragmentResponse())


def _member_pb(m: Member) -> rpc_pb2.Member:
    return rpc_pb2.Member(ID=m.id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls,
                          isLearner=m.is_learner)


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.gate = server.auth_gate
        self._dialer = MemberDialer(lambda: server.client_tls)

    def _members(self) -> list[rpc_pb2.Member]:
        return [_member_pb(m) for m in sorted(self.s.membership.members.values(),
                                               key=lambda m: m.id)]

    async def MemberList(self, request: rpc_pb2.MemberListRequest,
                         context: grpc.aio.ServicerContext) -> rpc_pb2.MemberListResponse:
        try:
            if request.linearizable:
                await self.s.linearizable_barrier()
        except errors.EtcdError as exc:
            await _fail(context, exc)
        return _fill(self.s, rpc_pb2.MemberListResponse(members=self._members()))

    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest,
                        context: grpc.aio.ServicerContext) -> rpc_pb2.MemberAddResponse:
        try:
            self.gate.admin(context)  # etcd's checkMembershipOperationPermission
            try:
                urls = parse_urls("peer-urls", ",".join(request.peerURLs))
            except (ConfigError, ValueError):  # ValueError: urllib on a port out of range
                raise errors.MemberBadURLs() from None
            ms = self.s.membership
            if any(set(urls) & set(m.peer_urls) for m in ms.members.values()):
                raise errors.PeerURLExist()
            mid = member_id(urls, self.s.cfg.initial_cluster_token)
            if mid in ms.members or mid in ms.removed:
                # a re-added member with the same URLs gets a fresh ID, as etcd's time salt
                mid = member_id(urls, f"{self.s.cfg.initial_cluster_token}{time.time_ns()}")
            if request.isLearner and any(m.is_learner for m in ms.members.values()):
                raise errors.TooManyLearners()
            m = Member(mid, "", urls, [], request.isLearner)
            await self.s.add_member(m)
            return _fill(self.s, rpc_pb2.MemberAddResponse(member=_member_pb(m),
                                                           members=self._members()))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest,
                           context: grpc.aio.ServicerContext) -> rpc_pb2.MemberRemoveResponse:
        try:
            self.gate.admin(context)
            await self.s.remove_member(request.ID)
            return _fill(self.s, rpc_pb2.MemberRemoveResponse(members=self._members()))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest,
                           context: grpc.aio.ServicerContext) -> rpc_pb2.MemberUpdateResponse:
        """etcd's MemberUpdate; unlike etcd 3.6.16, which accepts any string and leaves the
        check to etcdctl, the peer URLs are validated here as MemberAdd's are.

        A follower hands the request to the leader, which proposes it and answers once it
        has applied it: the moved member, if it proposed, would never hear of the commit,
        because the leader's transport dials the member's new URL as soon as it applies
        the change (the member listens there only after its restart)."""
        try:
            self.gate.admin(context)
            try:
                urls = parse_urls("peer-urls", ",".join(request.peerURLs))
            except (ConfigError, ValueError):
                raise errors.MemberBadURLs() from None
            if not self.s.is_leader():
                try:
                    return await rpc_pb2_grpc.ClusterStub(
                        await _leader_channel(self.s, self._dialer)).MemberUpdate(
                        request, timeout=self.s.request_timeout,
                        metadata=await self.s.forward_metadata(token_metadata(context)))
                except grpc.aio.AioRpcError as exc:
                    await context.abort(exc.code(), exc.details() or "")
            await self.s.update_member(request.ID, urls)
            return _fill(self.s, rpc_pb2.MemberUpdateResponse(members=self._members()))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,
                            context: grpc.aio.ServicerContext) -> rpc_pb2.MemberPromoteResponse:
        try:
            self.gate.admin(context)
            m = self.s.membership.members.get(request.ID)
            if m is None:
                raise errors.MemberNotFound()
            if not m.is_learner:
                raise errors.MemberNotLearner()
            if not self.s.is_leader():
                # only the leader knows whether the learner caught up (etcd forwards the
                # promotion to the leader too); a follower's proposal would be dropped
                # there silently and time out here
                try:
                    return await rpc_pb2_grpc.ClusterStub(
                        await _leader_channel(self.s, self._dialer)).MemberPromote(
                        request, timeout=self.s.request_timeout,
                        metadata=await self.s.forward_metadata(token_metadata(context)))
                except grpc.aio.AioRpcError as exc:
                    await context.abort(exc.code(), exc.details() or "")
            await self.s.promote_member(m.id)
            return _fill(self.s, rpc_pb2.MemberPromoteResponse(members=self._members()))
        except errors.EtcdError as exc:
            await _fail(context, exc)


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    """Grant and revoke go through the log (revoke's "not found" comes from the applied
    state); keep-alive and time-to-live are answered by the leader, which alone tracks
    deadlines (a follower forwards them to it), and only after a ReadIndex barrier:
    applied caught up with commit, leadership confirmed."""

    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.gate = server.auth_gate
        self._dialer = MemberDialer(lambda: server.client_tls)

    def _check_lease_keys(self, context: grpc.aio.ServicerContext, lease_ids: list[int],
                          write: bool) -> None:
        """etcd's checkLeaseRenew (write) and checkLeaseTimeToLive/Leases (read): some
        user, and a root one or one allowed every key the leases hold."""
        store = self.gate.store
        if not store.enabled:
            return
        ai = self.gate.info(context)
        if ai is None:
            raise errors.UserEmpty()
        if store.is_admin(ai):
            return
        for lid in lease_ids:
            for key in self.s.leases.keys(self.s.backend, lid):
                if write:
                    store.check_put(ai, key)
                else:
                    store.check_range(ai, key)

    async def LeaseGrant(self, request: rpc_pb2.LeaseGrantRequest,
                         context: grpc.aio.ServicerContext) -> rpc_pb2.LeaseGrantResponse:
        try:
            validate.check_lease_grant(request)
            if request.ID == 0:
                # chosen before proposing, so every member applies the same ID
                request.ID = secrets.randbits(62) + 1
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def LeaseRevoke(self, request: rpc_pb2.LeaseRevokeRequest,
                          context: grpc.aio.ServicerContext) -> rpc_pb2.LeaseRevokeResponse:
        try:
            # no check against this member's table, which may lag behind the log: the
            # apply path answers "lease not found" from the applied state, as etcd's
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def _leader_stub(self) -> rpc_pb2_grpc.LeaseStub:
        return rpc_pb2_grpc.LeaseStub(await _leader_channel(self.s, self._dialer))

    async def LeaseKeepAlive(self, request_iterator: Any,
                             context: grpc.aio.ServicerContext) -> Any:
        async for req in request_iterator:
            try:
                self._check_lease_keys(context, [req.ID], write=True)
                renewed = await self._renew_as_leader(req.ID) if self._leader() else None
                if renewed is None:
                    md = await self.s.forward_metadata(token_metadata(context))
                    resp = await self._forward_keepalive(req, md)
                    renewed = resp.TTL
                ttl = renewed
            except errors.LeaseNotFound:
                ttl = 0  # etcd answers a keep-alive for an unknown lease with TTL 0
            except errors.EtcdError as exc:
                await _fail(context, exc)
            except grpc.aio.AioRpcError as exc:  # the leader's answer (or its absence)
                await context.abort(exc.code(), exc.details() or "")
            yield _fill(self.s, rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, TTL=ttl))

    def _leader(self) -> bool:
        return self.s.is_leader()

    async def _leader_barrier(self) -> bool:
        """As etcd 3.5's LeaseRenew/LeaseTimeToLive on the leader: wait until the applied
        index reaches the commit index and leadership is confirmed by a quorum (one
        ReadIndex round: a new leader answers it only once an entry of its own term has
        committed). False if this member is no longer the leader afterwards."""
        await self.s.linearizable_barrier()
        return self._leader()

    async def _renew_as_leader(self, lease_id: int) -> int | None:
        """The renewed TTL, or None if leadership moved meanwhile (then forward)."""
        if not await self._leader_barrier():
            return None
        if not self.s.leases.exists(lease_id):
            raise errors.LeaseNotFound()
        await self.s.clear_lease_checkpoint(lease_id)
        if not self._leader():
            return None
        return self.s.leases.renew(lease_id, time.monotonic())

    async def _forward_keepalive(self, req: rpc_pb2.LeaseKeepAliveRequest,
                                 metadata: tuple[tuple[str, str], ...]) -> Any:
        stub = await self._leader_stub()
        call = stub.LeaseKeepAlive(iter([req]), timeout=self.s.request_timeout,
                                   metadata=metadata)
        async for resp in call:
            return resp
        raise errors.NoLeader()

    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest,
                              context: grpc.aio.ServicerContext,
                              ) -> rpc_pb2.LeaseTimeToLiveResponse:
        try:
            self.gate.require(context)
            if request.keys:  # etcd checks the keys' permissions only when they are asked for
                self._check_lease_keys(context, [request.ID], write=False)
            if not self._leader() or not await self._leader_barrier():
                try:
                    return await (await self._leader_stub()).LeaseTimeToLive(
                        request, timeout=self.s.request_timeout,
                        metadata=await self.s.forward_metadata(token_metadata(context)))
                except grpc.aio.AioRpcError as exc:
                    await context.abort(exc.code(), exc.details() or "")
            if not self.s.leases.exists(request.ID):
                return _fill(self.s, rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1))
            resp = rpc_pb2.LeaseTimeToLiveResponse(
                ID=request.ID, TTL=self.s.leases.remaining(request.ID, time.monotonic()),
                grantedTTL=self.s.leases.ttls[request.ID])
            if request.keys:
                resp.keys.extend(self.s.leases.keys(self.s.backend, request.ID))
            return _fill(self.s, resp)
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def LeaseLeases(self, request: rpc_pb2.LeaseLeasesRequest,
                          context: grpc.aio.ServicerContext) -> rpc_pb2.LeaseLeasesResponse:
        try:
            self._check_lease_keys(context, sorted(self.s.leases.ttls), write=False)
        except errors.EtcdError as exc:
            await _fail(context, exc)
        resp = rpc_pb2.LeaseLeasesResponse()
        for lid in sorted(self.s.leases.ttls):
            resp.leases.add(ID=lid)
        return _fill(self.s, resp)
