"""Issue 11 defect 8 on a member: every queue that a client or a peer can grow is bounded
and has a gauge. Linearizable reads that time out without a leader leave nothing behind;
the peer inbox drops beyond its bound; a leader without quorum refuses proposals once its
uncommitted entries are too big; the member refuses proposals with etcd's "too many
requests" when committed - applied exceeds its bound; a Ready's committed entries are
bounded in size. Before the fix: 200 timed-out reads stayed queued, the inbox grew without
bound, and none of the refusals existed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftkv.mvcc import errors
from raftkv.raft import Message, MessageType
from raftkv.server import raftserver
from raftkv.server.config import ServerConfig
from raftkv.server.raftserver import RaftServer
from tests.server.inproc import InProcCluster

pytestmark = pytest.mark.slow  # in-process members with real sockets and fsync


def _gauge(server: RaftServer, name: str) -> float:
    server._update_size_metrics()
    v = server.metrics.registry.get_sample_value(name)
    assert v is not None, name
    return v


async def test_timed_out_reads_leave_nothing_behind(tmp_path: Path) -> None:
    c = InProcCluster(tmp_path)
    try:
        await c.start()
        await c.stop_member(1)
        await c.stop_member(2)
        n = c.running()[0]
        while n.server.lead != 0:  # check-quorum: the lone member loses its leader
            await n.server.leader_changed.wait()
        for _ in range(200):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(n.server.linearizable_barrier(), 0.01)
        assert n.server.pending_reads() == 0
        assert _gauge(n.server, "raftkv_server_pending_reads") == 0
        # and the number waiting at once is bounded
        raftserver_max = raftserver.MAX_PENDING_READS
        raftserver.MAX_PENDING_READS = 5
        try:
            waiting = [asyncio.ensure_future(n.server.linearizable_barrier())
                       for _ in range(5)]
            await asyncio.sleep(0)
            assert _gauge(n.server, "raftkv_server_pending_reads") == 5
            with pytest.raises(errors.TooManyRequests):
                await n.server.linearizable_barrier()
            for w in waiting:
                w.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert n.server.pending_reads() == 0
        finally:
            raftserver.MAX_PENDING_READS = raftserver_max
    finally:
        await c.stop()


def test_the_peer_inbox_is_bounded(tmp_path: Path) -> None:
    s = RaftServer(ServerConfig(name="default", data_dir=tmp_path / "x"))
    for _ in range(raftserver.MAX_INBOX + 500):
        s._on_message(Message(MessageType.HEARTBEAT, sender=2, to=s.id, term=1))
    assert len(s._inbox) == raftserver.MAX_INBOX
    assert s.metrics.registry.get_sample_value("raftkv_server_peer_inbox_messages") == (
        raftserver.MAX_INBOX)
    assert s.metrics.registry.get_sample_value(
        "raftkv_server_peer_inbox_dropped_total") == 500


async def test_uncommitted_entries_are_bounded_without_quorum(tmp_path: Path) -> None:
    c = InProcCluster(tmp_path, election_ms=10_000)  # the leader stays leader meanwhile
    try:
        await c.start()
        lead = await c.wait_leader()
        assert lead.server.node.raft.max_uncommitted_size == (
            raftserver.MAX_UNCOMMITTED_ENTRIES_SIZE)  # the member sets the bound
        lead.server.node.raft.max_uncommitted_size = 2000  # small, to reach it quickly
        for i, n in enumerate(c.nodes):
            if n is not None and n is not lead:
                await c.stop_member(i)
        puts = [asyncio.ensure_future(lead.put(b"k%03d" % i, b"v" * 50)) for i in range(100)]
        done, pending = await asyncio.wait(puts, timeout=5)  # refusals come at once
        refused = [d for d in done if isinstance(d.exception(), errors.TooManyRequests)]
        assert len(refused) == len(done) > 0 and pending, "no proposal was refused"
        assert lead.server.is_leader()
        assert 1000 < _gauge(lead.server, "raftkv_server_uncommitted_entries_bytes") <= 2000
        for p in pending:
            p.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await c.stop()


async def test_too_many_requests_when_apply_falls_behind(tmp_path: Path) -> None:
    c = InProcCluster(tmp_path)
    try:
        await c.start()
        lead = await c.wait_leader()
        s = lead.server
        assert s.node.raft.raft_log.max_next_ents_size == raftserver.MAX_COMMITTED_SIZE_PER_READY
        s.max_apply_backlog = 20
        await s.backend_lock.acquire()  # apply stalls, as behind a long defragmentation
        try:
            puts = [asyncio.ensure_future(lead.put(b"b%03d" % i, b"v")) for i in range(30)]
            while s.committed_index() - s.applied_index <= 20:
                await asyncio.sleep(0.01)
            assert _gauge(s, "raftkv_server_apply_backlog_entries") > 20
            with pytest.raises(errors.TooManyRequests) as exc:
                await lead.put(b"one-more", b"v")
            assert exc.value.message == "etcdserver: too many requests"
        finally:
            s.backend_lock.release()
        assert all(not isinstance(r, BaseException)
                   for r in await asyncio.gather(*puts, return_exceptions=True))
        await lead.put(b"after", b"v")
    finally:
        await c.stop()
