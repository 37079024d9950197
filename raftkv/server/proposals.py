"""Proposals and leadership moves: what this member asks Raft to put into the log.

Job: admit a write (alive, size, quota and NOSPACE alarm, a known leader, the apply
backlog), propose it, and wait (bounded by the request timeout) for the apply task to
resolve it; likewise for configuration changes (MemberAdd/Remove/Promote/Update) and for
leadership transfers (MoveLeader, and the leader's hand-over before it stops). The
member's own proposals live here too: the leader's revocation of expired leases and the
publication of this member's name and client URLs (etcd's publish), and the
leader's lease checkpoints (etcd's LeaseCheckpoint: remaining TTLs, every
``--lease-checkpoint-interval``, at most ``CHECKPOINT_BATCH`` leases per entry).

Invariants: nothing here applies an entry or writes the backend; a proposal's waiter is
registered, with the term it was proposed in, before the entry can commit and removed on
every exit (answered, refused, timed out, cancelled, or failed by the apply task once a
newer term's entry applies); leadership is read from the server's Ready soft state
(``is_leader()``/``lead``), never from the Raft core; at most one publish and one
revocation per lease and one round of checkpoints are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import commands, errors
from raftkv.mvcc.auth import AuthInfo
from raftkv.mvcc.commands import Command, Kind
from raftkv.raft import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    LearnerNotCaughtUp,
    ProposalDropped,
    UncommittedSizeExceeded,
)
from raftkv.raft.quorum import majority
from raftkv.server.deadline import answered
from raftkv.server.membership import Member

if TYPE_CHECKING:
    from raftkv.server.raftserver import RaftServer

log = logging.getLogger("raftkv.server")

DEFAULT_QUOTA_BYTES = 2 << 30  # etcd's default, also used for --quota-backend-bytes=0
CHECKPOINT_BATCH = 1000  # etcd's maxLeaseCheckpointBatchSize


class Proposals:
    """The proposing side of one member; the waiters it registers live on the server,
    where the apply task resolves them."""

    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self._ids = commands.RequestIDs()
        self._revoking: set[int] = set()
        self._publishing: asyncio.Future[None] | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._next_checkpoint = 0.0

    def check_alive(self) -> None:
        s = self.s
        if s._fatal is not None or s._stopping:
            raise errors.Stopped()
        if s.removed:
            raise errors.Stopped("etcdserver: the member has been permanently removed from "
                                 "the cluster")

    def over_quota(self, cost: int = 0) -> bool:
        s = self.s
        quota = s.cfg.quota_backend_bytes or DEFAULT_QUOTA_BYTES
        # the size as of the last tick (``_update_size_metrics``), not a query per write
        return s._db_size + cost > quota

    async def propose(self, request: Any, auth: AuthInfo | None = None) -> Any:
        s = self.s
        self.check_alive()
        cmd = Command(commands.kind_of(request), self._ids.next(), request, s.id,
                      auth.user if auth else "", auth.revision if auth else 0)
        data = cmd.encode()
        if len(data) > s.cfg.max_request_bytes:
            raise errors.RequestTooLarge()
        if cmd.kind in (Kind.PUT, Kind.TXN, Kind.LEASE_GRANT) and (
                s.nospace or self.over_quota(len(data))):
            s.nospace = True  # sticky until `etcdctl alarm disarm`, as etcd's alarm
            raise errors.NoSpace()
        if s.lead == NONE:
            raise errors.NoLeader()
        if s.committed_index() - s.applied_index > s.max_apply_backlog:
            s.metrics.too_many_requests.inc()
            raise errors.TooManyRequests()  # etcd's maxGapBetweenApplyAndCommitIndex
        fut: asyncio.Future[Any] = s.loop.create_future()
        s._waiters[cmd.request_id] = fut
        s._waiter_terms[cmd.request_id] = s.term()
        s.metrics.proposals_pending.inc()
        try:
            try:
                s.node.propose(data)
            except UncommittedSizeExceeded:
                s.metrics.proposals_failed.inc()
                s.metrics.too_many_requests.inc()
                raise errors.TooManyRequests() from None
            except ProposalDropped as exc:
                s.metrics.proposals_failed.inc()
                raise errors.NoLeader() if s.lead == NONE else errors.LeaderChanged() from exc
            s._wake.set()
            return await answered(fut, s.request_timeout, self._timed_out)
        finally:
            s._waiters.pop(cmd.request_id, None)
            s._waiter_terms.pop(cmd.request_id, None)
            s.metrics.proposals_pending.dec()

    def _timed_out(self) -> BaseException:
        self.s.metrics.proposals_failed.inc()
        return errors.Timeout()

    async def propose_conf_change(self, cc: ConfChange) -> ConfState:
        s = self.s
        self.check_alive()
        if s.lead == NONE:
            raise errors.NoLeader()
        before = s.node.raft.raft_log.last_index()
        fut: asyncio.Future[ConfState] = asyncio.get_running_loop().create_future()
        entry = (cc, before, fut)
        s._conf_waiters.append(entry)
        try:
            try:
                s.node.propose_conf_change(cc)
            except LearnerNotCaughtUp:
                raise errors.LearnerNotReady() from None
            except ProposalDropped as exc:
                raise errors.EtcdError(f"etcdserver: {exc}") from exc
            s._wake.set()
            try:
                return await asyncio.wait_for(asyncio.shield(fut), s.request_timeout)
            except TimeoutError:
                raise errors.Timeout() from None
        finally:
            if entry in s._conf_waiters:
                s._conf_waiters.remove(entry)

    async def add_member(self, m: Member) -> ConfState:
        kind = ConfChangeType.ADD_LEARNER_NODE if m.is_learner else ConfChangeType.ADD_NODE
        return await self.propose_conf_change(ConfChange(kind, m.id, m.to_json()))

    async def remove_member(self, member_id: int) -> ConfState:
        s = self.s
        m = s.membership.members.get(member_id)
        if m is None:
            raise errors.MemberNotFound()
        if not m.is_learner:
            voters = [v.id for v in s.membership.voters() if v.id != member_id]
            started = sum(1 for v in voters if v == s.id or s.transport.connected(v))
            if voters and started < majority(len(voters)):
                raise errors.NotEnoughStarted()
        return await self.propose_conf_change(
            ConfChange(ConfChangeType.REMOVE_NODE, member_id))

    async def promote_member(self, member_id: int) -> ConfState:
        m = self.s.membership.members.get(member_id)
        if m is None:
            raise errors.MemberNotFound()
        if not m.is_learner:
            raise errors.MemberNotLearner()
        return await self.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, member_id))

    async def update_member(self, member_id: int, peer_urls: list[str]) -> ConfState:
        """MemberUpdate as etcd: a conf change (UpdateNode) carrying the member with its new
        peer URLs; checked here against this member's view and again at apply."""
        ms = self.s.membership
        m = ms.members.get(member_id)
        if m is None:
            raise errors.MemberNotFound()
        if any(set(peer_urls) & set(o.peer_urls) for o in ms.members.values()
               if o.id != member_id):
            raise errors.PeerURLExist()
        ctx = Member(member_id, m.name, list(peer_urls), list(m.client_urls), m.is_learner)
        return await self.propose_conf_change(
            ConfChange(ConfChangeType.UPDATE_NODE, member_id, ctx.to_json()))

    async def move_leader(self, target: int) -> None:
        s = self.s
        self.check_alive()
        if not s.is_leader():
            raise errors.NotLeader()
        if target not in s.node.raft.prs.voters or target == s.id:
            raise errors.BadLeaderTransferee()
        s.node.transfer_leadership(target)
        s._wake.set()

        async def moved() -> None:
            while s.lead != target:
                await s.leader_changed.wait()

        try:
            await asyncio.wait_for(moved(), s.request_timeout)
        except TimeoutError:
            raise errors.Timeout() from None

    async def transfer_leadership_before_stop(self) -> int:
        """Hand leadership to the most caught-up voter whose stream is up (etcd's
        longestConnected), and wait for it up to an election timeout, or until that
        voter's stream is lost (it is stopping too): the new leader, or 0."""
        s = self.s
        if not s.is_leader() or s.removed:
            return 0
        r = s.node.raft
        others = [(pr.match, vid) for vid, pr in r.prs.progress.items()
                  if vid != s.id and vid in r.prs.voters and pr.recent_active
                  and s.transport.connected(vid)]
        if not others:
            return 0
        match, target = max(others)
        log.info("stopping: transferring leadership to %x (match %d of %d)", target, match,
                 r.raft_log.last_index())
        s.node.transfer_leadership(target)
        s._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.cfg.election_timeout_ms / 1000
        while s.lead in (s.id, NONE):
            left = deadline - loop.time()
            if left <= 0 or not s.transport.connected(target):
                why = "timed out" if left <= 0 else "its stream was lost"
                log.warning("stopping: leadership transfer to %x did not complete (%s)",
                            target, why)
                return 0
            # woken by a leader change; the stream is looked at once per heartbeat
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.leader_changed.wait(),
                                       min(left, s.cfg.heartbeat_interval_ms / 1000))
        log.info("stopping: leadership transferred to %x", s.lead)
        return s.lead

    # --- the member's own proposals, started once per tick by the Ready loop -------------

    def maybe_publish(self) -> None:
        """Make our name and client URLs part of the replicated membership (etcd's publish)."""
        s = self.s
        if s.lead == NONE or self._publishing is not None or s.removed:
            return
        me = s.membership.members.get(s.id)
        want = list(s.cfg.advertise_client_urls)
        if me is None or (me.name == s.cfg.name and me.client_urls == want):
            return
        req = rpc_pb2.Member(ID=s.id, name=s.cfg.name, clientURLs=want)

        async def publish() -> None:
            try:
                with contextlib.suppress(errors.EtcdError):
                    await self.propose(req)
            finally:
                self._publishing = None

        self._publishing = asyncio.ensure_future(publish())
        s._background.add(self._publishing)
        self._publishing.add_done_callback(s._background.discard)

    def checkpoint_leases(self, now: float) -> None:
        """The leader replicates remaining TTLs once per checkpoint interval."""
        s = self.s
        if not s.cfg.lease_checkpoint or not s.is_leader() or self._checkpointing is not None:
            return
        if now < self._next_checkpoint:
            return
        self._next_checkpoint = now + s.cfg.lease_checkpoint_interval_s
        todo = s.leases.checkpoints(now)
        if not todo:
            return

        async def run() -> None:
            try:
                for i in range(0, len(todo), CHECKPOINT_BATCH):
                    req = rpc_pb2.LeaseCheckpointRequest(checkpoints=[
                        rpc_pb2.LeaseCheckpoint(ID=lid, remaining_TTL=left)
                        for lid, left in todo[i:i + CHECKPOINT_BATCH]])
                    with contextlib.suppress(errors.EtcdError):
                        await self.propose(req)
            finally:
                self._checkpointing = None

        self._checkpointing = asyncio.ensure_future(run())
        s._background.add(self._checkpointing)
        self._checkpointing.add_done_callback(s._background.discard)

    def on_promote(self, now: float) -> None:
        """A new leader's first checkpoints come one interval after its promotion."""
        self._next_checkpoint = now + self.s.cfg.lease_checkpoint_interval_s

    async def clear_checkpoint(self, lease_id: int) -> None:
        """Before a renewal: a recorded remaining TTL would outlive it on a new leader, so
        replicate its clearing first (etcd's Renew does the same). Also with checkpoints
        turned off: a record left from when they were on must not outlive a renewal."""
        if lease_id in self.s.leases.checkpointed:
            await self.propose(rpc_pb2.LeaseCheckpointRequest(
                checkpoints=[rpc_pb2.LeaseCheckpoint(ID=lease_id, remaining_TTL=0)]))

    def revoke_expired(self, now: float) -> None:
        """The leader revokes leases past their deadline, through the log."""
        s = self.s
        if not s.is_leader() or s.applier.alarms.corrupt():
            return  # under CORRUPT every revoke is refused: retrying would only grow the log
        for lid in s.leases.expired(now):
            if lid not in self._revoking:
                self._revoking.add(lid)
                t = asyncio.ensure_future(self._revoke(lid))
                s._background.add(t)
                t.add_done_callback(s._background.discard)

    async def _revoke(self, lease_id: int) -> None:
        try:
            with contextlib.suppress(errors.EtcdError):
                await self.propose(rpc_pb2.LeaseRevokeRequest(ID=lease_id), self.s.as_root())
        finally:
            self._revoking.discard(lease_id)
