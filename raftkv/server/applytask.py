"""The apply task: committed entries -> the backend, in log order, off the Ready loop.

Job: as etcd's apply goroutine, take the batches of committed entries the Ready loop
hands over and apply them a chunk (``APPLY_CHUNK``) at a time under ``backend_lock``
(failpoints ``raftBeforeApply``/``raftAfterApply`` around each chunk), yielding to the
event loop between chunks; resolve the proposals and configuration-change waiters they
answer, and fail the proposals of older terms once a newer term's entry applies; serve
the reads they release; take a snapshot every ``snapshot_count`` applied entries. Also
here: installing a leader's snapshot (called by the Ready loop once this task drained)
and deleting a scheduled compaction's rows a page (``COMPACT_PAGE``) at a time.

Invariants: entries are applied once, in log order, and the applied index only grows
between snapshot installs; entries at or below the backend's consistent index were
applied before a restart and are skipped (configuration changes are still fed to Raft,
whose configuration is rebuilt from the log); the applied index follows Raft's log, never
the database's; nothing here sends messages or writes the WAL except through the snapshot
lifecycle (which takes the WAL lock). The entry -> transaction step itself is
``raftkv.server.apply`` (deterministic, tested without asyncio).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from raftkv import failpoints
from raftkv.mvcc import errors
from raftkv.raft import ConfChangeType, Entry, EntryType, Snapshot
from raftkv.raft.codec import decode_conf_change
from raftkv.server.apply import MEMBERS_META
from raftkv.server.membership import Membership

if TYPE_CHECKING:
    from raftkv.server.raftserver import RaftServer

log = logging.getLogger("raftkv.server")

APPLY_CHUNK = 64  # entries applied between yields to the loop
COMPACT_PAGE = 200  # keys per compaction step


class ApplyTask:
    """The apply side of one member; the queue it drains lives on the server."""

    def __init__(self, server: RaftServer) -> None:
        self.s = server

    async def run(self) -> None:
        """Apply committed entries in log order, a chunk at a time under the backend lock,
        yielding to the loop between chunks; then serve reads and maybe snapshot."""
        s = self.s
        while not s._stopping:
            if not s._committed:
                s._drained.set()
                s._apply_wake.clear()
                await s._apply_wake.wait()
                continue
            ents = s._committed[0]
            async with s.backend_lock:
                for i in range(0, len(ents), APPLY_CHUNK):
                    failpoints.hit("raftBeforeApply")
                    self.apply(ents[i:i + APPLY_CHUNK])
                    failpoints.hit("raftAfterApply")
                    s._serve_reads()
                    if s.backend.commit_due():
                        await self.commit()
                    elif i + APPLY_CHUNK < len(ents):
                        await asyncio.sleep(0)
                s._committed.popleft()
                await self.maybe_snapshot()
            s._wake.set()  # a conf change may have given Raft something to say

    async def commit(self) -> None:
        """Commit the backend's batch (an fsync) in a worker; the caller holds the backend
        lock, so nothing else uses the connection meanwhile."""
        await asyncio.to_thread(self.s.backend.force_commit)

    async def compact_loop(self) -> None:
        """Delete the rows of a scheduled compaction a page of keys at a time."""
        s = self.s
        while not s._stopping:
            if not s.backend.compact_pending():
                s._compact_wake.clear()
                await s._compact_wake.wait()
                continue
            async with s.backend_lock:
                s.backend.compact_step(COMPACT_PAGE)
                if s.backend.commit_due():
                    await self.commit()
            await asyncio.sleep(0)

    def apply(self, ents: list[Entry]) -> None:
        s = self.s
        consistent = s.backend.consistent_index()
        for e in ents:
            if e.index <= s.applied_index:
                continue  # already applied (re-delivered after a snapshot install)
            if e.type is EntryType.CONF_CHANGE:
                self.apply_conf_change(e, replay=e.index <= consistent)
            elif e.index > consistent:
                self.apply_normal(e)
            s.applied_index = e.index
            if e.term > s.applied_term:
                self.fail_stale_waiters(e.term)
        if s.backend.compact_pending():
            s._compact_wake.set()
        s.metrics.proposals_applied.set(s.applied_index)
        s.metrics.proposals_committed.set(s.node.raft.raft_log.committed)

    def fail_stale_waiters(self, term: int) -> None:
        """An entry of ``term`` applied: an entry proposed in an older term and not applied
        by now never commits in that term (a log's terms never decrease), and its
        forwarded proposal may have died with that term's leader. Its client hears so at
        once (etcd's "possibly due to previous leader failure", the outcome unknown)
        instead of waiting out the request timeout; a retry reaches the new leader."""
        s = self.s
        s.applied_term = term
        for rid, proposed in list(s._waiter_terms.items()):
            fut = s._waiters.get(rid)
            if proposed < term and fut is not None and not fut.done():
                fut.set_exception(errors.TimeoutDueToLeaderFail())

    def apply_normal(self, e: Entry) -> None:
        s = self.s
        done = s.applier.apply_normal(e)
        if done.key is None or done.key[0] != s.id:
            return  # another member's proposal (or nobody's): its proposer answers it
        fut = s._waiters.pop(done.key[1], None)
        if fut is not None and not fut.done():
            if isinstance(done.result, BaseException):
                fut.set_exception(done.result)
            else:
                fut.set_result(done.result)

    def apply_conf_change(self, e: Entry, replay: bool) -> None:
        s = self.s
        cc = decode_conf_change(e.data)
        cs = s.node.apply_conf_change(cc)
        refusal = s.applier.apply_membership(cc, e.index) if not replay else None
        s.transport.set_peers(s.membership.peer_urls())
        if s.id not in cs.voters and s.id not in cs.learners and (
                cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == s.id):
            s.removed = True
            log.warning("this member was removed from the cluster")
        s.metrics.is_learner.set(1 if s.id in cs.learners else 0)
        for want, after, fut in list(s._conf_waiters):
            if e.index > after and (want.type, want.node_id) == (cc.type, cc.node_id):
                s._conf_waiters.remove((want, after, fut))
                if fut.done():
                    continue
                if refusal is not None:
                    fut.set_exception(refusal)
                else:
                    fut.set_result(cs)

    async def install_snapshot(self, snap: Snapshot) -> None:
        """Swap in a leader's snapshot; the caller (the Ready loop) waited for this task to
        drain and holds the backend lock."""
        s = self.s
        assert s.snapshots is not None
        meta = snap.metadata
        s.backend = await s.snapshots.install(snap, s.backend)
        s.membership = Membership.decode(s.backend.meta_get(MEMBERS_META))
        s.applier.reset(s.backend, s.membership)
        s.watch_hub.restore()  # watchers catch up from the new backend
        s.transport.set_peers(s.membership.peer_urls())
        # Raft re-delivers the entries after the snapshot; those the new database already
        # holds (up to its consistent index) are skipped when applied. Our applied index
        # follows Raft's log, never the database's: a later snapshot must lie in the log.
        s.applied_index = meta.index
        if meta.term > s.applied_term:
            self.fail_stale_waiters(meta.term)
        log.info("installed the leader's snapshot at index %d (term %d)", meta.index, meta.term)

    async def maybe_snapshot(self) -> None:
        s = self.s
        assert s.snapshots is not None
        if s.snapshots.due(s.applied_index):
            await s.snapshots.create(s.backend, s.applied_index,
                                     s.node.raft.prs.conf_state())
