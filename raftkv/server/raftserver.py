"""One raftkv member: the facade that wires its parts together and answers its callers.

Job: build the member from a Recovered data directory, start and stop its tasks, and be
the one object the services, the transport, the HTTP endpoints, ``embed`` and the tests
ask (``propose``, ``linearizable_barrier``, ``range``, ``is_leader``, ``status``, ...).
The jobs themselves live in their own modules:

- ``recovery``: lock, WAL, snapshot and backend recovery -> one ``Recovered`` value;
- ``readyloop``: the Ready loop alone, etcd's order persist -> send -> apply -> advance,
  with the failpoints between the steps;
- ``applytask``: committed entries -> backend, in log order, off the Ready loop;
  ``apply``: one entry -> one backend transaction (deterministic, no event loop);
- ``proposals``: writes, configuration changes and leadership transfers into the log;
- ``snapshots``: the snapshot file lifecycle; ``waiters``: ReadIndex rounds;
  ``reads``: paged Range; ``looplag``: the loop-lag histogram.

Invariants: the state the parts share (Raft node, backend and its lock, the WAL lock,
the committed-entry queue, the proposal waiters) lives here, created once; leadership
has one source of truth, the soft state of the last Ready (``lead``, ``is_leader()``),
set only by the Ready loop. Bounds (each with a gauge): peer inbox, pending linearizable
reads, uncommitted entry bytes (Raft), committed bytes per Ready (Raft), committed -
applied (``too many requests``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.auth import ROOT, AuthInfo
from raftkv.mvcc.lease import Lessor
from raftkv.mvcc.watch import WatchHub
from raftkv.raft import (
    NONE,
    ConfChange,
    Config,
    ConfState,
    Entry,
    Message,
    RawNode,
    StateType,
)
from raftkv.server import autotls, maintenance
from raftkv.server.apply import MEMBERS_META, Applier, ApplyMetrics
from raftkv.server.applytask import ApplyTask
from raftkv.server.authgate import AuthGate
from raftkv.server.config import ConfigError, ServerConfig
from raftkv.server.corruptcheck import CorruptChecker
from raftkv.server.deadline import answered
from raftkv.server.looplag import LoopLag
from raftkv.server.membership import Member, Membership
from raftkv.server.metrics import ServerMetrics
from raftkv.server.proposals import Proposals
from raftkv.server.reads import range_paged
from raftkv.server.readyloop import MAX_INBOX as MAX_INBOX  # re-exported: tests bound it
from raftkv.server.readyloop import ReadyLoop
from raftkv.server.recovery import (
    recover,
)
from raftkv.server.snapshots import SnapshotLifecycle
from raftkv.server.tlsfiles import CertSource
from raftkv.server.tokens import new_prefix
from raftkv.server.transport import (
    Transport,
    TransportError,
    discover,
)
from raftkv.server.waiters import ReadIndexQueue
from raftkv.server.worker import SerialWorker
from raftkv.storage.lock import DataDirLock
from raftkv.storage.wal import WAL

log = logging.getLogger("raftkv.server")


class RaftServer:
    def __init__(self, cfg: ServerConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.id = cfg.member_id
        self.cluster_id = cfg.cluster_id
        self.member_dir = cfg.data_dir / "member"
        self.metrics = ServerMetrics()
        self.membership = Membership()
        self.loop: asyncio.AbstractEventLoop  # the loop start() runs on
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._waiter_terms: dict[int, int] = {}  # request ID -> the term it was proposed in
        self.applied_term = 0  # the term of the last applied entry (0: none since start)
        self._conf_waiters: list[tuple[ConfChange, int, asyncio.Future[ConfState]]] = []
        self.reads = ReadIndexQueue(self.id)
        self._inbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fatal: BaseException | None = None
        self._lock: DataDirLock | None = None
        self.applied_index = 0
        self.snapshots: SnapshotLifecycle | None = None
        self.lead = NONE
        self._role = StateType.FOLLOWER
        self.leader_changed = asyncio.Event()  # set (then replaced) at every change
        self.removed = False
        self.nospace = False  # this member's NOSPACE alarm
        self._discovered: dict[int, str] = {}  # peers learned when joining an existing cluster
        self.request_timeout = 5.0 + 2 * cfg.election_timeout_ms / 1000
        self.max_apply_backlog = MAX_APPLY_BACKLOG
        # apply runs in its own task, fed committed entries by the Ready loop (as etcd's
        # apply goroutine), so a slow apply or a defragmentation never stops heartbeats
        self._committed: deque[list[Entry]] = deque()
        self._apply_wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._compact_wake = asyncio.Event()
        # held by whoever uses the backend's connection across an await (apply batches,
        # paged reads, defragmentation, snapshot install and backup)
        self.backend_lock = asyncio.Lock()
        # the WAL is written by the Ready loop (entries, in a worker) and by snapshots
        # (markers, releases, in the apply task): one at a time
        self._wal_lock = asyncio.Lock()
        self.wal_worker = SerialWorker("raftkv-wal")  # the Ready loop's synced saves
        self.ready_loop = ReadyLoop(self)
        self.proposals = Proposals(self)
        self.apply_task = ApplyTask(self)
        self.loop_lag = LoopLag(self.metrics.registry,
                                interval=min(0.01, cfg.heartbeat_interval_ms / 10000))
        self._db_size = 0
        self._db_size_in_use = 0
        self.corrupt_check = (CorruptChecker(self, cfg.corrupt_check_time)
                              if cfg.corrupt_check_time > 0 else None)
        # Maintenance.Snapshot streams served at once (each holds a database copy on disk)
        self.snapshot_streams = asyncio.Semaphore(maintenance.MAX_STREAMS)
        # who is asking (the services' side of auth), over the applier's store and tokens
        self.auth_gate = AuthGate(lambda: self.applier.auth, lambda: self.applier.tokens,
                                  lambda: self.cfg.client_tls.client_cert_auth)
        self.peer_tls: CertSource | None = None  # the peer port's certificates (start())
        # the client port's (set by the Node before start()): members dial each other's
        # https client URLs with them (forwarding to the leader, the corruption check)
        self.client_tls: CertSource | None = None
        self._forward_token: tuple[tuple[tuple[str, str], ...], float] | None = None

    # --- startup -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        # the hot paths create futures on this loop without asking asyncio for it: CPython
        # 3.11's get_running_loop() makes a getpid() system call each time (fork check),
        # 3% of a leader's event loop thread under load (py-spy --native)
        self.loop = asyncio.get_running_loop()
        self.peer_tls = autotls.source(cfg.peer_tls, cfg.tls, cfg.data_dir,
                                       [*cfg.initial_advertise_peer_urls, *cfg.listen_peer_urls])
        if not WAL.exists(self.member_dir / "wal") and cfg.initial_cluster_state == "existing":
            await self._discover()
        rec = recover(cfg, self.member_dir, self.id, self.cluster_id,
                      bootstrap=cfg.initial_cluster_state == "new")
        self.id, self.cluster_id = rec.member_id, rec.cluster_id
        self.reads = ReadIndexQueue(self.id)
        self._lock, self.wal, self.storage = rec.lock, rec.wal, rec.storage
        self.backend = rec.backend
        self.snapshots = SnapshotLifecycle(
            rec.snap_dir, rec.snapshotter, rec.wal, rec.storage, self._wal_lock,
            rec.snapshot_index, cfg.snapshot_count, cfg.snapshot_catchup_entries)
        snap_dir = rec.snap_dir
        self.membership = Membership.decode(self.backend.meta_get(MEMBERS_META))
        # etcd's minimum lease TTL: one and a half election timeouts, in whole seconds
        self.leases = Lessor(self.backend, math.ceil(1.5 * cfg.election_timeout_ms / 1000))
        self.applier = Applier(self.backend, self.leases, self.membership, self.is_leader,
                               time.monotonic, ApplyMetrics(self.metrics.registry))
        self.watch_hub = WatchHub(lambda: self.backend, self.backend_lock,
                                  self.metrics.registry)
        self.applier.on_changes = self.watch_hub.notify
        self.applier.tokens.ttl = float(cfg.auth_token_ttl_s)
        self.applier.tokens_from = self.storage.last_index() + 1
        self._background: set[asyncio.Future[None]] = set()
        self.applied_index = self.snapshot_index
        self.node = RawNode(
            Config(
                id=self.id,
                election_tick=cfg.election_ticks,
                heartbeat_tick=1,
                applied=self.snapshot_index,
                max_size_per_msg=1 << 20,
                max_inflight_msgs=256,
                max_committed_size_per_ready=MAX_COMMITTED_SIZE_PER_READY,
                max_uncommitted_entries_size=MAX_UNCOMMITTED_ENTRIES_SIZE,
                pre_vote=True,
                # off only under the test-only unsafe switch (raftkv.server.unsafe)
                check_quorum=not cfg.unsafe_deposed_leader_serves,
            ),
            self.storage,
            random.Random(),
        )
        self.transport = Transport(
            self.id, self.cluster_id, self._on_message, self.node.report_unreachable,
            self.node.report_snapshot, self._snapshot_file, snap_dir, self._members_json,
            tls=self.peer_tls,
        )
        await self.transport.listen(cfg.listen_peer_urls[0])
        peers = self.membership.peer_urls() or self._discovered or {
            mid: urls[0] for mid, (_, urls) in cfg.initial_members().items()
        }
        self.transport.set_peers(peers)
        self._update_size_metrics()
        maintenance.clean(self.member_dir)
        self._task = asyncio.create_task(self._main(), name="raft-member")
        if self.corrupt_check is not None:  # never fatal: its rounds catch their errors
            t = asyncio.create_task(self.corrupt_check.run(lambda: self._stopping),
                                    name="raft-corrupt-check")
            self._background.add(t)
            t.add_done_callback(self._background.discard)

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
                info = json.loads(await discover(urls[0], mine, tls=self.peer_tls))
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

    def fatal_task(self) -> asyncio.Task[None]:
        """The member's task (Ready loop, apply, compaction, loop-lag monitor): it ends
        only on stop or on a fatal error."""
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        """Stop the member; a leader first hands leadership to its most caught-up voter
        (etcd's Stop), so the cluster does not wait an election timeout for a leader."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(errors.EtcdError):
                await self.transfer_leadership_before_stop()
        self._stopping = True
        self._wake.set()
        self._apply_wake.set()
        self._compact_wake.set()
        self.watch_hub.wake()
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
        self.wal_worker.close()  # a save still running (its task was cancelled) ends first
        self.wal.close()
        if self._lock is not None:
            self._lock.release()

    # --- the loop ----------------------------------------------------------------------

    def _on_message(self, m: Message) -> None:
        self.ready_loop.on_message(m)

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self.ready_loop.run(), name="raft-ready-loop"),
                 asyncio.create_task(self.apply_task.run(), name="raft-apply"),
                 asyncio.create_task(self.apply_task.compact_loop(), name="raft-compact"),
                 asyncio.create_task(self.loop_lag.run(lambda: self._stopping),
                                     name="raft-loop-lag"),
                 asyncio.create_task(self.watch_hub.run(lambda: self._stopping),
                                     name="raft-watch-sync")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc
        except Exception as exc:
            self._fatal = exc
            log.critical("raft loop stopped: %s", exc, exc_info=exc)
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(errors.Stopped(f"etcdserver: server stopped: {exc}"))
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_tick(self, now: float) -> None:
        """Work the Ready loop does once per tick, after ticking Raft."""
        self._retry_reads(now)
        self.proposals.revoke_expired(now)
        self.proposals.checkpoint_leases(now)
        self.proposals.maybe_publish()
        self._update_size_metrics()

    def _update_size_metrics(self) -> None:
        r = self.node.raft
        self.metrics.uncommitted_bytes.set(r.uncommitted_size)
        self.metrics.apply_backlog.set(r.raft_log.committed - self.applied_index)
        self.metrics.pending_reads.set(self.pending_reads())
        if self.backend_lock.locked():
            return  # a defragmentation may hold the connection: keep the last figures
        self._db_size = self.backend.size()
        self._db_size_in_use = self.backend.size_in_use()
        self.metrics.db_size.set(self._db_size)
        self.metrics.db_size_in_use.set(self._db_size_in_use)

    # --- snapshots (the file lifecycle is raftkv.server.snapshots) ----------------------

    @property
    def snapshot_index(self) -> int:
        return self.snapshots.index if self.snapshots is not None else 0

    async def _snapshot_file(self, m: Message) -> Path:
        """The backend copy to stream with an outgoing snapshot message."""
        assert self.snapshots is not None
        async with self.backend_lock:
            return await self.snapshots.copy_for_peer(self.backend, m.to)

    # --- proposals -----------------------------------------------------------------------

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.id,
                                      revision=revision, raft_term=self.node.raft.term)

    def over_quota(self, cost: int = 0) -> bool:
        """etcd's backend quota: the database file plus this request beyond the quota.

        A write refused for space raises this member's NOSPACE alarm (``nospace``), which
        refuses further writes until disarmed, as etcd's; unlike etcd's, the alarm is
        this member's own and is not replicated through the log."""
        return self.proposals.over_quota(cost)

    def _check_alive(self) -> None:
        self.proposals.check_alive()

    async def root_metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata for this member's own calls to its peers' client ports (the
        corruption check's HashKV, which needs root while auth is on): a root token
        replicated by an Authenticate entry of the member's own, as every member applies
        it. Empty while auth is off."""
        if not self.applier.auth.enabled:
            return ()
        resp = await self.propose(rpc_pb2.AuthenticateRequest(name=ROOT, password=new_prefix()))
        return (("token", resp.token),)

    async def forward_metadata(self, caller: tuple[tuple[str, str], ...]
                               ) -> tuple[tuple[str, str], ...]:
        """Metadata for a call this member forwards to the leader after checking the caller
        itself: the caller's token if it sent one; otherwise, while auth is on (a caller
        named by its client certificate's CN, which the leader cannot see: it sees this
        member's certificate), a root token of this member's own, as etcd forwards over
        its peer port with no user. The token is reused for half the token TTL while this
        member still knows it: every member drops it alike when root's password changes or
        auth goes off (the leader may have applied that first: then one call fails)."""
        if caller or not self.applier.auth.enabled:
            return caller
        now = time.monotonic()
        cached = self._forward_token
        if (cached is None or now - cached[1] > self.applier.tokens.ttl / 2
                or self.applier.tokens.user_of(dict(cached[0]).get("token", "")) != ROOT):
            cached = self._forward_token = (await self.root_metadata(), now)
        return cached[0]

    def as_root(self) -> AuthInfo | None:
        """The member itself (expired leases) and an embedding program act as the root
        user while auth is on (etcd's WithRoot): root exists then and cannot be removed."""
        store = self.applier.auth
        return AuthInfo(ROOT, store.revision) if store.enabled else None

    async def propose(self, request: Any, auth: AuthInfo | None = None) -> Any:
        """Replicate a write; returns its response once applied here (or raises EtcdError).
        ``auth``: the user asking and the auth revision they were seen at (checked at
        apply while auth is on)."""
        return await self.proposals.propose(request, auth)

    async def propose_conf_change(self, cc: ConfChange) -> ConfState:
        return await self.proposals.propose_conf_change(cc)

    async def add_member(self, m: Member) -> ConfState:
        """MemberAdd: a voter, or a learner if ``m.is_learner``."""
        return await self.proposals.add_member(m)

    async def remove_member(self, member_id: int) -> ConfState:
        """MemberRemove; refuses (etcd's NotEnoughStarted) to remove a voter when the
        voters left that this member sees connected would not be a majority of them."""
        return await self.proposals.remove_member(member_id)

    async def promote_member(self, member_id: int) -> ConfState:
        """MemberPromote: a learner becomes a voter once caught up (LearnerNotReady)."""
        return await self.proposals.promote_member(member_id)

    async def update_member(self, member_id: int, peer_urls: list[str]) -> ConfState:
        """MemberUpdate: new peer URLs for a member, replicated as etcd's UpdateNode."""
        return await self.proposals.update_member(member_id, peer_urls)

    async def clear_lease_checkpoint(self, lease_id: int) -> None:
        """Leader, before renewing a lease: drop its replicated remaining TTL."""
        await self.proposals.clear_checkpoint(lease_id)

    async def move_leader(self, target: int) -> None:
        """Hand leadership to ``target`` (a voter), as etcd's MoveLeader: leader only."""
        await self.proposals.move_leader(target)

    async def transfer_leadership_before_stop(self) -> int:
        """If this member leads, transfer leadership to the voter whose log matches ours
        furthest (caught up, if any is) and wait up to an election timeout for it;
        returns the new leader (0: none was chosen or it did not take over)."""
        return await self.proposals.transfer_leadership_before_stop()

    # --- reads -----------------------------------------------------------------------------

    async def linearizable_barrier(self) -> None:
        """Return once this member has applied everything committed when it was called."""
        self._check_alive()
        if self.cfg.unsafe_deposed_leader_serves and self.is_leader():
            return  # TEST ONLY (raftkv.server.unsafe): no ReadIndex, a possibly stale read
        if self.reads.pending() >= MAX_PENDING_READS:
            self.metrics.too_many_requests.inc()
            raise errors.TooManyRequests()
        fut: asyncio.Future[None] = self.loop.create_future()
        self.reads.enqueue(fut)
        self._wake.set()
        try:
            await answered(fut, self.request_timeout,
                           lambda: errors.NoLeader() if self.lead == NONE else errors.Timeout())
        finally:
            self.reads.discard(fut)  # timed out or cancelled: nobody waits for it any more

    def pending_reads(self) -> int:
        """Linearizable reads still waited for (queued, in flight, or waiting for apply)."""
        return self.reads.pending()

    def _start_read(self) -> None:
        """One ReadIndex round serves every read queued before it (etcd's batching)."""
        if self.lead == NONE or not self.reads.has_queued():
            return
        ctx = self.reads.start(time.monotonic())
        if ctx is not None:
            self.node.read_index(ctx)

    def _retry_reads(self, now: float) -> None:
        """A ReadIndex lost to a leader change is asked again, under a new context."""
        self.reads.retry(now, 2 * self.cfg.election_timeout_ms / 1000)

    def _serve_reads(self) -> None:
        self.reads.serve(self.applied_index)

    # --- the backend, without stalling the loop ------------------------------------------

    async def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """A Range on this member's backend (serializable: no barrier here), read and
        built a page at a time so a huge range does not stall the loop."""
        return await range_paged(self.backend, self.backend_lock, request)

    async def defragment(self) -> None:
        """etcd's Defragment, in a worker thread; apply waits for it, Raft does not."""
        async with self.backend_lock:
            self.backend.force_commit()
            await asyncio.to_thread(self.backend.defragment)
        self._update_size_metrics()

    # --- what the services may ask (instead of reaching into node.raft) --------------------

    def is_leader(self) -> bool:
        """Whether this member leads, as of the last Ready's soft state (one source of
        truth with ``lead`` and the leader gauges)."""
        return self._role is StateType.LEADER

    def leader_id(self) -> int:
        """The leader this member knows of (0: none)."""
        return self.lead

    def term(self) -> int:
        return self.node.raft.term

    def committed_index(self) -> int:
        return self.node.raft.raft_log.committed

    def voters(self) -> set[int]:
        return set(self.node.raft.prs.voters)

    def hash_kv(self, revision: int = 0) -> tuple[int, int, int]:
        """etcd's HashKV: (hash, the revision it covers, compacted revision) of the
        keyspace; equal on every member that applied the same entries."""
        rev = revision or self.backend.current_revision()
        return self.backend.hash_kv(rev), rev, self.backend.compacted_revision()

    def alarms(self) -> list[tuple[int, int]]:
        """The replicated alarms (member ID, AlarmType), as applied here."""
        return self.applier.alarms.listed()

    # --- status ------------------------------------------------------------------------------

    def status(self) -> rpc_pb2.StatusResponse:
        r = self.node.raft
        resp = rpc_pb2.StatusResponse(
            version=ETCD_VERSION,
            dbSize=self._db_size,
            dbSizeInUse=self._db_size_in_use,
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
        for mid, alarm in self.alarms():
            resp.errors.append(f"memberID:{mid} alarm:{rpc_pb2.AlarmType.Name(alarm)} ")
        resp.header.CopyFrom(self.header(self.backend.current_revision()))
        return resp


MAX_APPLY_BACKLOG = 5000  # etcd's maxGapBetweenApplyAndCommitIndex
MAX_PENDING_READS = 10_000
MAX_COMMITTED_SIZE_PER_READY = 1 << 20  # etcd: MaxCommittedSizePerReady = MaxSizePerMsg
MAX_UNCOMMITTED_ENTRIES_SIZE = 64 << 20
# what Status reports: kube-apiserver enables RequestWatchProgress (and its consistent reads
# from the watch cache) above 3.5.12; progress requests are proven in tests/server/test_watch_*
ETCD_VERSION = "3.6.16"
