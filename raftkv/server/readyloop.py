"""The Ready loop alone: tick, step the peers' messages, and handle each Ready in etcd's order.

Job: drive the member's ``RawNode``. It is the one module that names the order of a Ready
(etcd's raftNode loop), with the failpoints between the steps:

1. persist (``raftBeforeSave`` .. ``raftAfterSave``): a received snapshot (after the apply
   task drained: file, WAL marker, backend swap, crash-atomic with ``recovery``), then
   entries and hard state to the WAL under the WAL lock, in a worker thread with an
   fdatasync (inline, without one, when ``Ready.must_sync`` is false: only the commit
   index moved); append them to the in-memory Raft storage;
2. send (``raftBeforeFollowerSend``): the Ready's messages, which may promise what step 1
   made durable, so never before it; a leader sends its messages before step 1 instead
   (``raftBeforeLeaderSend``), writing its disk while the followers write theirs, as
   etcd does;
3. apply: hand the committed entries to the apply task (never applied here, so a long
   apply or a defragmentation does not stop heartbeats);
4. note the read states, serve the reads they release, then ``advance()``.

Invariants: the soft state of each Ready is the one source of truth for leadership (the
server's ``lead``, ``is_leader()``, the leader gauges and the lessor's promote/demote
follow it here and nowhere else); the peer inbox is bounded (``MAX_INBOX``) except for
snapshots; a peer's bad message is dropped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from raftkv import failpoints
from raftkv.raft import NONE, Message, MessageType, Ready, StateType

if TYPE_CHECKING:
    from raftkv.server.raftserver import RaftServer

log = logging.getLogger("raftkv.server")

MAX_INBOX = 4096  # messages from peers (etcd's receive buffer)


class ReadyLoop:
    """The Ready loop of one member; its state (inbox, wake event) lives on the server."""

    def __init__(self, server: RaftServer) -> None:
        self.s = server

    def on_message(self, m: Message) -> None:
        s = self.s
        # bounded as etcd's receive buffer: Raft recovers lost messages, memory does not
        # recover an unbounded queue; snapshots (rare, costly to resend) always get in
        if len(s._inbox) >= MAX_INBOX and m.type is not MessageType.SNAP:
            s.metrics.peer_inbox_dropped.inc()
            return
        s._inbox.append(m)
        s.metrics.peer_inbox.set(len(s._inbox))
        s._wake.set()

    async def run(self) -> None:
        """Tick, step, and handle every Ready until the server stops."""
        s = self.s
        loop = asyncio.get_running_loop()
        tick = s.cfg.heartbeat_interval_ms / 1000
        next_tick = time.monotonic() + tick
        timer: asyncio.TimerHandle | None = None
        timer_for = 0.0
        due = [False]  # the tick timer fired (it may fire a hair before ``next_tick``)

        def fire() -> None:
            due[0] = True
            s._wake.set()

        try:
            while not s._stopping:
                if timer_for != next_tick:  # one timer per tick, not one per wake-up
                    if timer is not None:
                        timer.cancel()
                    timer = loop.call_later(max(0.0, next_tick - time.monotonic()), fire)
                    timer_for = next_tick
                if s._wake.is_set():
                    await asyncio.sleep(0)  # busy: let the other tasks run between rounds
                await s._wake.wait()
                s._wake.clear()
                now = time.monotonic()
                if due[0] or now >= next_tick:
                    due[0] = False
                    s.node.tick()
                    next_tick = now + tick
                    s._on_tick(now)
                while s._inbox:
                    m = s._inbox.popleft()
                    s.metrics.peer_inbox.set(len(s._inbox))
                    try:
                        s.node.step(m)
                    except Exception as exc:  # a peer's bad message must not kill us
                        log.warning("dropping message %s from %x: %s", m.type.name, m.sender,
                                    exc)
                s._start_read()
                while s.node.has_ready():
                    await self.handle_ready(s.node.ready())
        finally:
            if timer is not None:
                timer.cancel()

    async def handle_ready(self, rd: Ready) -> None:
        s = self.s
        if rd.soft_state is not None:
            self.on_soft_state(rd.soft_state.lead, rd.soft_state.state)
        leading = s._role is StateType.LEADER
        if leading:
            # 0. a leader replicates while it writes its own disk (Raft thesis 10.2.1, as
            # etcd): its messages promise nothing of its own log, and no entry commits
            # before this Ready's write is done, for the acknowledgements that could
            # commit it are stepped only after this Ready is handled
            failpoints.hit("raftBeforeLeaderSend")
            s.transport.send(rd.messages)
            failpoints.hit("raftAfterLeaderSend")  # sent, its own disk not yet written
        # 1. persist
        failpoints.hit("raftBeforeSave")
        if rd.snapshot is not None:
            # everything committed before the snapshot is applied first (etcd waits for
            # its apply goroutine likewise), then the backend is swapped under its lock
            await s._drained.wait()
            async with s.backend_lock:
                await s.apply_task.install_snapshot(rd.snapshot)
        hs = rd.hard_state if not rd.hard_state.is_empty() else None
        if hs is not None or rd.entries:
            async with s._wal_lock:
                if rd.entries or rd.must_sync:
                    await s.wal_worker.run(s.loop, s.wal.save, hs, rd.entries,
                                           rd.must_sync)
                else:
                    # only the commit index moved: no fdatasync, a small write done inline
                    # (an inline fdatasync, though quick here, stalls the loop now and
                    # then: watch delivery p99 went from 14 to 35-190 ms)
                    s.wal.save(hs, [], False)
        if rd.entries:
            s.storage.append(rd.entries)
        if hs is not None:
            s.storage.set_hard_state(hs)
        failpoints.hit("raftAfterSave")
        # 2. send: a follower's or candidate's messages (votes, acknowledgements) promise
        # what step 1 made durable, so never before it
        if not leading:
            failpoints.hit("raftBeforeFollowerSend")
            s.transport.send(rd.messages)
        # 3. hand committed entries to the apply task
        s.metrics.ready_committed_bytes.set(sum(len(e.data) for e in rd.committed_entries))
        if rd.committed_entries:
            s._committed.append(rd.committed_entries)
            s._drained.clear()
            s._apply_wake.set()
        # 4. reads, advance
        for rs in rd.read_states:
            s.reads.on_read_state(rs.request_ctx, rs.index)
        s._serve_reads()
        s.node.advance(rd)

    def on_soft_state(self, lead: int, state: StateType) -> None:
        """Leadership as the Ready reports it: the one place ``lead`` and the role change."""
        s = self.s
        if lead != s.lead and lead != NONE:
            s.metrics.leader_changes.inc()
        s.lead = lead
        s._role = state
        s.leader_changed.set()
        s.leader_changed = asyncio.Event()
        s.metrics.has_leader.set(1 if lead != NONE else 0)
        s.metrics.is_leader.set(1 if state is StateType.LEADER else 0)
        if state is StateType.LEADER:
            s.leases.promote(time.monotonic(), s.cfg.election_timeout_ms / 1000)
            s.proposals.on_promote(time.monotonic())
        else:
            s.leases.demote()
