"""One raftkv member: the Ready loop in etcd's order, the apply path, proposals and reads.

The only module that does I/O for consensus. Per Ready, strictly:

1. persist: a received snapshot (file, WAL marker, backend swap), then entries and hard
   state to the WAL with one fdatasync (in a worker thread, so clients keep being served);
   append them to the in-memory Raft storage;
2. send the Ready's messages (they may promise what step 1 made durable);
3. apply committed entries to the backend in log order (each with the raft index as the
   backend's consistent index, in the same transaction), apply configuration changes to
   Raft and to the membership, resolve waiting proposals;
4. serve linearizable reads whose read index is now applied; ``advance()``.

Failpoints sit between the steps. Entries at or below the backend's consistent index were
applied before a restart and are skipped (configuration changes are still fed to Raft,
whose configuration is rebuilt from the log). A snapshot is taken every
``snapshot_count`` applied entries: backend synced, snapshot file saved, WAL released.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aetcd.rpc import rpc_pb2

from raftkv import failpoints
from raftkv.mvcc import commands, errors, kv
from raftkv.mvcc.commands import Command, Kind
from raftkv.mvcc.lease import Lessor
from raftkv.raft import (
    NONE,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    ProposalDropped,
    RawNode,
    Ready,
    Snapshot,
    StateType,
)
from raftkv.raft.codec import decode_conf_change, encode_conf_change
from raftkv.server.config import ConfigError, ServerConfig
from raftkv.server.membership import Member, Membership
from raftkv.server.metrics import ServerMetrics
from raftkv.server.transport import (
    Transport,
    TransportError,
    discover,
    received_snapshot_path,
)
from raftkv.storage.backend import Backend
from raftkv.storage.lock import DataDirLock
from raftkv.storage.snap import Snapshotter
from raftkv.storage.wal import WAL

log = logging.getLogger("raftkv.server")

MEMBERS_META = "members"


@dataclass
class _Read:
    ctx: bytes
    waiters: list[asyncio.Future[None]]
    sent_at: float


class RaftServer:
    def __init__(self, cfg: ServerConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.id = cfg.member_id
        self.cluster_id = cfg.cluster_id
        self.member_dir = cfg.data_dir / "member"
        self.metrics = ServerMetrics()
        self.membership = Membership()
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._conf_waiters: list[tuple[ConfChange, int, asyncio.Future[ConfState]]] = []
        self._ids = itertools.count(1)
        self._read_ids = itertools.count(1)
        self._read_queue: list[asyncio.Future[None]] = []
        self._read_inflight: dict[bytes, _Read] = {}
        self._reads_ready: list[tuple[int, list[asyncio.Future[None]]]] = []
        self._inbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fatal: BaseException | None = None
        self._lock: DataDirLock | None = None
        self.applied_index = 0
        self.snapshot_index = 0
        self.lead = NONE
        self.leader_changed = asyncio.Event()  # set (then replaced) at every change
        self.removed = False
        self.nospace = False  # this member's NOSPACE alarm
        self._discovered: dict[int, str] = {}  # peers learned when joining an existing cluster
        self.request_timeout = 5.0 + 2 * cfg.election_timeout_ms / 1000

    # --- startup -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        self.member_dir.mkdir(parents=True, exist_ok=True)
        self._lock = DataDirLock(self.member_dir).acquire()
        wal_dir = self.member_dir / "wal"
        snap_dir = self.member_dir / "snap"
        snap_dir.mkdir(parents=True, exist_ok=True)
        self.snapshotter = Snapshotter(snap_dir)
        self.backend = Backend.open(snap_dir / "db", initial_revision=ETCD_FIRST_REVISION)
        self.storage = MemoryStorage()
        fresh = not WAL.exists(wal_dir)
        if fresh and cfg.initial_cluster_state == "existing":
            await self._discover()
        if fresh:
            meta = f"{self.id:016x}:{self.cluster_id:016x}".encode()
            self.wal = WAL.create(wal_dir, meta, segment_size=cfg.wal_segment_bytes)
            if cfg.initial_cluster_state == "new":
                self._bootstrap()
        else:
            self.wal, state = WAL.open(wal_dir, segment_size=cfg.wal_segment_bytes)
            mid, _, cid = state.metadata.decode().partition(":")
            self.id, self.cluster_id = int(mid, 16), int(cid, 16)
            snap = self.snapshotter.load_newest()
            if snap is not None and snap.metadata.index >= state.snapshot.index:
                self.storage.apply_snapshot(snap)
            elif state.snapshot.index:
                self.storage.apply_snapshot(Snapshot(state.snapshot))
            self.storage.append(state.entries)
            self.storage.set_hard_state(state.hard_state)
        self.snapshot_index = self.storage.snapshot().metadata.index
        self.membership = Membership.decode(self.backend.meta_get(MEMBERS_META))
        # etcd's minimum lease TTL: one and a half election timeouts, in whole seconds
        self.leases = Lessor(self.backend, math.ceil(1.5 * cfg.election_timeout_ms / 1000))
        self._revoking: set[int] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._publishing: asyncio.Future[None] | None = None
        self.applied_index = self.snapshot_index
        self.node = RawNode(
            Config(
                id=self.id,
                election_tick=cfg.election_ticks,
                heartbeat_tick=1,
                applied=self.snapshot_index,
                max_size_per_msg=1 << 20,
                max_inflight_msgs=256,
                pre_vote=True,
                check_quorum=True,
            ),
            self.storage,
            random.Random(),
        )
        self.transport = Transport(
            self.id, self.cluster_id, self._on_message, self.node.report_unreachable,
            self.node.report_snapshot, self._snapshot_file, snap_dir, self._members_json,
        )
        await self.transport.listen(cfg.listen_peer_urls[0])
        peers = self.membership.peer_urls() or self._discovered or {
            mid: urls[0] for mid, (_, urls) in cfg.initial_members().items()
        }
        self.transport.set_peers(peers)
        self._update_size_metrics()
        self._task = asyncio.create_task(self._run(), name="raft-loop")

    def _members_json(self) -> bytes:
        return json.dumps({"cluster_id": self.cluster_id,
                           "members": self.membership.member_dicts()}).encode()

    async def _discover(self) -> None:
        """Joining an existing cluster: learn our member ID (assigned by MemberAdd) and the
        cluster ID from a running member, found by our advertised peer URLs."""
        mine = sorted(self.cfg.initial_advertise_peer_urls)
        errs = []
        for name, urls in self.cfg.initial_cluster.items():
            if sorted(urls) == mine:
                continue
            try:
                info = json.loads(await discover(urls[0], mine))
            except (TimeoutError, OSError, ValueError, TransportError) as exc:
                errs.append(f"{name}: {exc}")
                continue
            for m in info.get("members", []):
                if sorted(m.get("peer_urls", [])) == mine:
                    self.id, self.cluster_id = int(m["id"]), int(info["cluster_id"])
                    # talk to the members as the cluster knows them now (IDs assigned by
                    # MemberAdd need not match what --initial-cluster would compute)
                    self._discovered = {int(x["id"]): x["peer_urls"][0]
                                        for x in info["members"] if x.get("peer_urls")}
                    return
            raise ConfigError(
                f"no member with peer URLs {mine} in the cluster that {name} belongs to; "
                "add it first (etcdctl member add --peer-urls=...)")
        raise ConfigError("--initial-cluster-state=existing: no other member answered "
                          f"({'; '.join(errs) or 'none listed'})")

    def _bootstrap(self) -> None:
        """A brand-new cluster: every initial member added by a committed conf change."""
        ents = []
        for i, (mid, (name, urls)) in enumerate(sorted(self.cfg.initial_members().items())):
            # Identical on every member (Raft's logs must agree byte for byte): client
            # URLs are not known here; each member publishes its own once a leader exists.
            m = Member(mid, name, urls, [])
            cc = ConfChange(ConfChangeType.ADD_NODE, mid, m.to_json())
            ents.append(Entry(1, i + 1, EntryType.CONF_CHANGE, encode_conf_change(cc)))
        hs = HardState(term=1, vote=NONE, commit=len(ents))
        self.wal.save(hs, ents)
        self.storage.append(ents)
        self.storage.set_hard_state(hs)

    def fatal_task(self) -> asyncio.Task[None]:
        """The Raft loop's task: it ends only on stop or on a fatal error."""
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.transport.close()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.Stopped())
        self.backend.force_commit()
        self.backend.close()
        self.wal.close()
        if self._lock is not None:
            self._lock.release()

    # --- the loop ----------------------------------------------------------------------

    def _on_message(self, m: Message) -> None:
        self._inbox.append(m)
        self._wake.set()

    async def _run(self) -> None:
        tick = self.cfg.heartbeat_interval_ms / 1000
        next_tick = time.monotonic() + tick
        try:
            while not self._stopping:
                timeout = max(0.0, next_tick - time.monotonic())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                now = time.monotonic()
                if now >= next_tick:
                    self.node.tick()
                    next_tick = now + tick
                    self._retry_reads(now)
                    self._revoke_expired(now)
                    self._maybe_publish()
                    self._update_size_metrics()
                while self._inbox:
                    m = self._inbox.popleft()
                    try:
                        self.node.step(m)
                    except Exception as exc:  # a peer's bad message must not kill us
                        log.warning("dropping message %s from %x: %s", m.type.name, m.sender,
                                    exc)
                self._start_read()
                while self.node.has_ready():
                    await self._handle_ready(self.node.ready())
        except Exception as exc:
            self._fatal = exc
            log.critical("raft loop stopped: %s", exc, exc_info=True)
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(errors.Stopped(f"etcdserver: server stopped: {exc}"))
            raise

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.state)
        # 1. persist
        failpoints.hit("raftBeforeSave")
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        hs = rd.hard_state if not rd.hard_state.is_empty() else None
        if hs is not None or rd.entries:
            await asyncio.to_thread(self.wal.save, hs, rd.entries)
        if rd.entries:
            self.storage.append(rd.entries)
        if hs is not None:
            self.storage.set_hard_state(hs)
        failpoints.hit("raftAfterSave")
        # 2. send
        failpoints.hit("raftBeforeSend")
        self.transport.send(rd.messages)
        # 3. apply
        if rd.committed_entries:
            failpoints.hit("raftBeforeApply")
            self._apply(rd.committed_entries)
            failpoints.hit("raftAfterApply")
        # 4. reads, advance
        for rs in rd.read_states:
            r = self._read_inflight.pop(rs.request_ctx, None)
            if r is not None:
                self._reads_ready.append((rs.index, r.waiters))
        self._serve_reads()
        self.node.advance(rd)
        await self._maybe_snapshot()

    def _on_soft_state(self, lead: int, state: StateType) -> None:
        if lead != self.lead and lead != NONE:
            self.metrics.leader_changes.inc()
        self.lead = lead
        self.leader_changed.set()
        self.leader_changed = asyncio.Event()
        self.metrics.has_leader.set(1 if lead != NONE else 0)
        self.metrics.is_leader.set(1 if state is StateType.LEADER else 0)
        if state is StateType.LEADER:
            self.leases.promote(time.monotonic(), self.cfg.election_timeout_ms / 1000)
        else:
            self.leases.demote()

    def _maybe_publish(self) -> None:
        """Make our name and client URLs part of the replicated membership (etcd's publish)."""
        if self.lead == NONE or self._publishing is not None or self.removed:
            return
        me = self.membership.members.get(self.id)
        want = list(self.cfg.advertise_client_urls)
        if me is None or (me.name == self.cfg.name and me.client_urls == want):
            return
        req = rpc_pb2.Member(ID=self.id, name=self.cfg.name, clientURLs=want)

        async def publish() -> None:
            try:
                with contextlib.suppress(errors.EtcdError):
                    await self.propose(req)
            finally:
                self._publishing = None

        self._publishing = asyncio.ensure_future(publish())
        self._background.add(self._publishing)
        self._publishing.add_done_callback(self._background.discard)

    def _revoke_expired(self, now: float) -> None:
        """The leader revokes leases past their deadline, through the log."""
        if self.node.raft.state is not StateType.LEADER:
            return
        for lid in self.leases.expired(now):
            if lid not in self._revoking:
                self._revoking.add(lid)
                t = asyncio.ensure_future(self._revoke(lid))
                self._background.add(t)
                t.add_done_callback(self._background.discard)

    async def _revoke(self, lease_id: int) -> None:
        try:
            with contextlib.suppress(errors.EtcdError):
                await self.propose(rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        finally:
            self._revoking.discard(lease_id)

    # --- apply ---------------------------------------------------------------------------

    def _apply(self, ents: list[Entry]) -> None:
        consistent = self.backend.consistent_index()
        for e in ents:
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(e, replay=e.index <= consistent)
            elif e.index > consistent:
                self._apply_normal(e)
            self.applied_index = e.index
        self.backend.maybe_commit()
        self.metrics.proposals_applied.set(self.applied_index)
        self.metrics.proposals_committed.set(self.node.raft.raft_log.committed)

    def _apply_normal(self, e: Entry) -> None:
        if not e.data:
            with self.backend.write_txn() as w:
                w.end(e.index)
            return
        try:
            cmd = commands.decode(e.data)
        except commands.CommandError as exc:
            # Every member sees the same bytes, so every member skips it alike.
            log.error("skipping undecodable entry %d: %s", e.index, exc)
            with self.backend.write_txn() as w:
                w.end(e.index)
            return
        result: Any
        with self.backend.write_txn() as w:
            try:
                result = self._execute(cmd, w)
            except errors.EtcdError as exc:
                result = exc
            w.end(e.index)
        fut = self._waiters.pop(cmd.request_id, None)
        if fut is not None and not fut.done():
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _execute(self, cmd: Command, w: Any) -> Any:
        tx = kv.Tx(self.backend, w)
        if cmd.kind is Kind.PUT:
            return kv.put(tx, cmd.request, self.leases)
        if cmd.kind is Kind.DELETE_RANGE:
            return kv.delete_range(tx, cmd.request)
        if cmd.kind is Kind.TXN:
            return kv.txn(tx, cmd.request, self.leases)
        if cmd.kind is Kind.LEASE_GRANT:
            leader = self.node.raft.state is StateType.LEADER
            return self.leases.grant(cmd.request, time.monotonic() if leader else None)
        if cmd.kind is Kind.LEASE_REVOKE:
            return self.leases.revoke(tx, cmd.request.ID)
        if cmd.kind is Kind.PUBLISH:
            m = self.membership.members.get(cmd.request.ID)
            if m is not None:
                m.name = cmd.request.name
                m.client_urls = list(cmd.request.clientURLs)
                self.backend.meta_put(MEMBERS_META, self.membership.encode())
            return rpc_pb2.MemberUpdateResponse()
        if cmd.kind is Kind.COMPACT:
            rev = cmd.request.revision
            if rev <= self.backend.compacted_revision():
                raise errors.Compacted()
            if rev > self.backend.current_revision():
                raise errors.FutureRev()
            self.backend.compact(rev)
            resp = rpc_pb2.CompactionResponse()
            resp.header.revision = self.backend.current_revision()
            return resp
        raise errors.NotCapable(f"etcdserver: {cmd.kind.name.lower()} is not supported yet")

    def _apply_conf_change(self, e: Entry, replay: bool) -> None:
        cc = decode_conf_change(e.data)
        cs = self.node.apply_conf_change(cc)
        if not replay:
            ms = self.membership
            if cc.type is ConfChangeType.REMOVE_NODE:
                ms.members.pop(cc.node_id, None)
                ms.removed.add(cc.node_id)
            elif cc.type is ConfChangeType.ADD_NODE and cc.node_id in ms.members and not (
                    cc.context):
                ms.members[cc.node_id].is_learner = False  # promotion
            else:
                m = Member.from_json(cc.context) if cc.context else Member(cc.node_id)
                m.is_learner = cc.type is ConfChangeType.ADD_LEARNER_NODE
                old = ms.members.get(cc.node_id)
                if old is not None and not m.client_urls:
                    m.client_urls = old.client_urls
                ms.members[cc.node_id] = m
            with self.backend.write_txn() as w:
                self.backend.meta_put(MEMBERS_META, ms.encode())
                w.end(e.index)
        self.transport.set_peers(self.membership.peer_urls())
        if self.id not in cs.voters and self.id not in cs.learners and (
                cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.id):
            self.removed = True
            log.warning("this member was removed from the cluster")
        self.metrics.is_learner.set(1 if self.id in cs.learners else 0)
        for want, after, fut in list(self._conf_waiters):
            if e.index > after and (want.type, want.node_id) == (cc.type, cc.node_id):
                self._conf_waiters.remove((want, after, fut))
                if not fut.done():
                    fut.set_result(cs)

    def _update_size_metrics(self) -> None:
        self.metrics.db_size.set(self.backend.size())
        self.metrics.db_size_in_use.set(self.backend.size_in_use())

    # --- snapshots -----------------------------------------------------------------------

    async def _snapshot_file(self, m: Message) -> Path:
        """The backend copy to stream with an outgoing snapshot message."""
        path = self.member_dir / "snap" / f"send-{m.to:x}-{time.monotonic_ns()}.db"
        self.backend.force_commit()
        await asyncio.to_thread(self.backend.snapshot_to, path)
        return path

    async def _install_snapshot(self, snap: Snapshot) -> None:
        meta = snap.metadata
        received = received_snapshot_path(self.member_dir / "snap", meta.term, meta.index)
        if not received.exists():
            raise RuntimeError(f"snapshot {meta.term}/{meta.index} arrived without its "
                               f"backend file {received}")
        failpoints.hit("raftBeforeInstallSnapshot")
        self.snapshotter.save(snap)
        self.wal.save_snapshot(meta)
        self.storage.apply_snapshot(snap)
        self.backend.close()
        self.backend = Backend.install(self.member_dir / "snap" / "db", received,
                                       initial_revision=ETCD_FIRST_REVISION)
        self.membership = Membership.decode(self.backend.meta_get(MEMBERS_META))
        self.leases.reload(self.backend)
        self.transport.set_peers(self.membership.peer_urls())
        # Raft re-delivers the entries after the snapshot; those the new database already
        # holds (up to its consistent index) are skipped when applied. Our applied index
        # follows Raft's log, never the database's: a later snapshot must lie in the log.
        self.applied_index = meta.index
        self.snapshot_index = meta.index
        log.info("installed the leader's snapshot at index %d (term %d)", meta.index, meta.term)

    async def _maybe_snapshot(self) -> None:
        if self.applied_index - self.snapshot_index < self.cfg.snapshot_count:
            return
        index = self.applied_index
        cs = self.node.raft.prs.conf_state()
        self.backend.force_commit()
        snap = self.storage.create_snapshot(index, cs, b"")
        failpoints.hit("raftBeforeSaveSnap")
        await asyncio.to_thread(self.snapshotter.save, snap)
        self.wal.save_snapshot(snap.metadata)
        failpoints.hit("raftAfterSaveSnap")
        self.snapshot_index = index
        compact_to = index - self.cfg.snapshot_catchup_entries
        if compact_to > self.storage.first_index():
            self.storage.compact(compact_to)
        # The backend is synced past ``index``: WAL segments wholly below it can go.
        self.wal.release_to(index)
        failpoints.hit("raftAfterWALRelease")
        self.snapshotter.release(keep=5)

    # --- proposals -----------------------------------------------------------------------

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.id,
                                      revision=revision, raft_term=self.node.raft.term)

    def over_quota(self, cost: int = 0) -> bool:
        """etcd's backend quota: the database file plus this request beyond the quota.

        A write refused for space raises this member's NOSPACE alarm (``nospace``), which
        refuses further writes until disarmed, as etcd's; unlike etcd's, the alarm is
        this member's own and is not replicated through the log."""
        quota = self.cfg.quota_backend_bytes or DEFAULT_QUOTA_BYTES
        return self.backend.size() + cost > quota

    def _check_alive(self) -> None:
        if self._fatal is not None or self._stopping:
            raise errors.Stopped()
        if self.removed:
            raise errors.Stopped("etcdserver: the member has been permanently removed from "
                                 "the cluster")

    async def propose(self, request: Any) -> Any:
        """Replicate a write; returns its response once applied here (or raises EtcdError)."""
        self._check_alive()
        cmd = Command(commands.kind_of(request), (self.id << 40 ^ next(self._ids)) & (
            (1 << 64) - 1), request)
        data = cmd.encode()
        if len(data) > self.cfg.max_request_bytes:
            raise errors.RequestTooLarge()
        if cmd.kind in (Kind.PUT, Kind.TXN, Kind.LEASE_GRANT) and (
                self.nospace or self.over_quota(len(data))):
            self.nospace = True  # sticky until `etcdctl alarm disarm`, as etcd's alarm
            raise errors.NoSpace()
        if self.lead == NONE:
            raise errors.NoLeader()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[cmd.request_id] = fut
        self.metrics.proposals_pending.inc()
        try:
            try:
                self.node.propose(data)
            except ProposalDropped as exc:
                self.metrics.proposals_failed.inc()
                raise errors.NoLeader() if self.lead == NONE else errors.LeaderChanged() from exc
            self._wake.set()
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.request_timeout)
            except TimeoutError:
                self.metrics.proposals_failed.inc()
                raise errors.Timeout() from None
        finally:
            self._waiters.pop(cmd.request_id, None)
            self.metrics.proposals_pending.dec()

    async def propose_conf_change(self, cc: ConfChange) -> ConfState:
        self._check_alive()
        if self.lead == NONE:
            raise errors.NoLeader()
        before = self.node.raft.raft_log.last_index()
        fut: asyncio.Future[ConfState] = asyncio.get_running_loop().create_future()
        entry = (cc, before, fut)
        self._conf_waiters.append(entry)
        try:
            try:
                self.node.propose_conf_change(cc)
            except ProposalDropped as exc:
                raise errors.EtcdError(f"etcdserver: {exc}") from exc
            self._wake.set()
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.request_timeout)
            except TimeoutError:
                raise errors.Timeout() from None
        finally:
            if entry in self._conf_waiters:
                self._conf_waiters.remove(entry)

    async def move_leader(self, target: int) -> None:
        """Hand leadership to ``target`` (a voter), as etcd's MoveLeader: leader only."""
        self._check_alive()
        if self.node.raft.state is not StateType.LEADER:
            raise errors.NotLeader()
        if target not in self.node.raft.prs.voters or target == self.id:
            raise errors.BadLeaderTransferee()
        self.node.transfer_leadership(target)
        self._wake.set()

        async def moved() -> None:
            while self.lead != target:
                await self.leader_changed.wait()

        try:
            await asyncio.wait_for(moved(), self.request_timeout)
        except TimeoutError:
            raise errors.Timeout() from None

    # --- reads -----------------------------------------------------------------------------

    async def linearizable_barrier(self) -> None:
        """Return once this member has applied everything committed when it was called."""
        self._check_alive()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._read_queue.append(fut)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.request_timeout)
        except TimeoutError:
            raise (errors.NoLeader() if self.lead == NONE else errors.Timeout()) from None

    def _start_read(self) -> None:
        """One ReadIndex round serves every read queued before it (etcd's batching)."""
        if not self._read_queue or self.lead == NONE:
            return
        ctx = next(self._read_ids).to_bytes(8, "big")
        self._read_inflight[ctx] = _Read(ctx, self._read_queue, time.monotonic())
        self._read_queue = []
        self.node.read_index(ctx)

    def _retry_reads(self, now: float) -> None:
        """A ReadIndex lost to a leader change is asked again, under a new context."""
        limit = 2 * self.cfg.election_timeout_ms / 1000
        for ctx, r in list(self._read_inflight.items()):
            if now - r.sent_at > limit:
                del self._read_inflight[ctx]
                self._read_queue.extend(w for w in r.waiters if not w.done())

    def _serve_reads(self) -> None:
        keep = []
        for index, waiters in self._reads_ready:
            if index <= self.applied_index:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            else:
                keep.append((index, waiters))
        self._reads_ready = keep

    # --- status ------------------------------------------------------------------------------

    def status(self) -> rpc_pb2.StatusResponse:
        r = self.node.raft
        resp = rpc_pb2.StatusResponse(
            version=ETCD_VERSION,
            dbSize=self.backend.size(),
            dbSizeInUse=self.backend.size_in_use(),
            leader=self.lead,
            raftIndex=r.raft_log.committed,
            raftTerm=r.term,
            raftAppliedIndex=self.applied_index,
            isLearner=r.is_learner,
        )
        if self.lead == NONE:
            resp.errors.append("etcdserver: no leader")
        if self.nospace:
            resp.errors.append(f"memberID:{self.id} alarm:NOSPACE ")
        resp.header.CopyFrom(self.header(self.backend.current_revision()))
        return resp


DEFAULT_QUOTA_BYTES = 2 << 30  # etcd's default, also used for --quota-backend-bytes=0
ETCD_FIRST_REVISION = 1  # an empty etcd keyspace is at revision 1; the first write is 2
ETCD_VERSION = "3.5.12"  # what Status reports: kube-apiserver changes behaviour above it
