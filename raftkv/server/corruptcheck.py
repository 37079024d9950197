"""The leader's periodic corruption check, as etcd's ``--corrupt-check-time``.

Every interval the leader computes its HashKV at its current revision and asks every
other member (over their client URLs, Maintenance.HashKV; https ones with this member's
client-port certificate, :mod:`raftkv.server.memberdial`) for theirs at the same
revision. Among the members whose compacted revision is the leader's, a member whose
hash differs from the one a majority of the cluster shares (or, without such a majority,
from the leader's) holds data the log did not write: the leader proposes
``AlarmRequest(ACTIVATE, member, CORRUPT)`` through the log, so every member records the
alarm and refuses writes (``raftkv.mvcc.alarms``), as etcd's PeriodicCheck does (the
majority rule, which lets the leader name itself, is etcd's CompactHashCheck's). A
member that has not applied up to the revision yet (FutureRev), is unreachable or has
compacted differently is skipped for this round, as etcd skips it.

``initial_check`` is etcd's ``--experimental-initial-corrupt-check`` (3.6 also spells it
``--feature-gates=InitialCorruptCheck=true``; raftkv reads the flag only so far): before
a member serves clients it compares its own HashKV with every reachable peer's at its
current revision and refuses to start
(``DataInconsistency``, a storage error: exit code 3) on a mismatch at an equal compacted
revision; peers that are unreachable, behind or compacted differently are skipped, as
etcd skips them.

Invariants: only the leader checks periodically; a failing round (an error of any kind, a timeout)
is logged and never stops the member; an alarm already active is not proposed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import errors
from raftkv.server import maintenance
from raftkv.server.memberdial import MemberDialer
from raftkv.storage.errors import StorageError

if TYPE_CHECKING:
    from raftkv.server.raftserver import RaftServer

log = logging.getLogger("raftkv.server.corruptcheck")

INITIAL_TIMEOUT = 2.0  # seconds a peer gets to answer the initial check (then skipped)


def odd_ones_out(votes: dict[int, list[int]], leaders: int, members: int) -> list[int]:
    """The members to alarm, given who reported which hash: those outside a hash a
    majority of the cluster shares (the leader too, if it is outside); with no majority,
    those that disagree with the leader (whose hash is the log's best witness)."""
    quorum = members // 2 + 1
    agreed = next((h for h, ids in votes.items() if len(ids) >= quorum), leaders)
    return sorted(i for h, ids in votes.items() if h != agreed for i in ids)


class DataInconsistency(StorageError):
    """This member's keyspace differs from a peer's at the same revision."""


async def initial_check(s: RaftServer) -> int:
    """Compare with the peers before serving; returns how many peers agreed."""
    rev = s.backend.current_revision()
    mine = await maintenance.hash_kv(s, rev)
    checker = CorruptChecker(s, 0.0)
    try:
        await checker.authenticate()
        agreed = 0
        for m in s.membership.members.values():
            if m.id == s.id or not m.client_urls:
                continue
            resp = await checker._peer_hash(m.client_urls[0], rev, INITIAL_TIMEOUT)
            if resp is None or resp.compact_revision != mine.compact_revision:
                continue
            if resp.hash != mine.hash:
                raise DataInconsistency(
                    f"found data inconsistency with peer {m.id:x}: its hash at revision "
                    f"{rev} is {resp.hash}, ours is {mine.hash}; this member's data is not "
                    "the log's (restore it from a snapshot or remove and re-add it)")
            agreed += 1
        log.info("initial corruption check: %d peer(s) agree at revision %d", agreed, rev)
        return agreed
    finally:
        await checker.close()


class CorruptChecker:
    def __init__(self, server: RaftServer, interval: float) -> None:
        self.s = server
        self.interval = interval
        self._dialer = MemberDialer(lambda: server.client_tls)
        self.rounds = 0  # completed check rounds (tests wait on it)
        self._metadata: tuple[tuple[str, str], ...] = ()  # a root token while auth is on

    async def authenticate(self) -> None:
        """While auth is on, peers answer HashKV to root only: get this member a root token
        (a failure is logged; peers that refuse are then skipped like unreachable ones)."""
        try:
            self._metadata = await asyncio.wait_for(self.s.root_metadata(), INITIAL_TIMEOUT)
        except (errors.EtcdError, TimeoutError) as exc:
            log.warning("corruption check: no root token while auth is on: %s", exc)
            self._metadata = ()

    async def run(self, stopping: Callable[[], bool]) -> None:
        try:
            while not stopping():
                await asyncio.sleep(self.interval)  # the period itself, not a readiness wait
                if stopping() or not self.s.is_leader():
                    continue
                try:
                    await self.check_once()
                except (errors.EtcdError, grpc.aio.AioRpcError, OSError, TimeoutError) as exc:
                    log.warning("corruption check round failed: %s", exc)
        finally:
            await self.close()

    async def close(self) -> None:
        await self._dialer.close()

    async def _peer_hash(self, url: str, rev: int,
                         timeout: float | None = None) -> rpc_pb2.HashKVResponse | None:
        try:
            stub = rpc_pb2_grpc.MaintenanceStub(await self._dialer.channel(url))
            resp: rpc_pb2.HashKVResponse = await stub.HashKV(
                rpc_pb2.HashKVRequest(revision=rev), timeout=timeout or self.s.request_timeout,
                metadata=self._metadata)
            return resp
        except grpc.aio.AioRpcError as exc:
            log.info("corruption check: no hash from %s at revision %d: %s", url, rev,
                     exc.details())
            return None
        except OSError as exc:  # auto TLS: the peer's certificate could not be read
            log.info("corruption check: no hash from %s: %s", url, exc)
            return None

    async def check_once(self) -> list[int]:
        """One round; returns the members found corrupt (alarmed now or before)."""
        s = self.s
        await self.authenticate()
        rev = s.backend.current_revision()
        mine = await maintenance.hash_kv(s, rev)
        peers = [m for m in s.membership.members.values() if m.id != s.id and m.client_urls]
        got = await asyncio.gather(*(self._peer_hash(m.client_urls[0], rev) for m in peers))
        votes: dict[int, list[int]] = {mine.hash: [s.id]}
        for m, resp in zip(peers, got, strict=True):
            if resp is not None and resp.compact_revision == mine.compact_revision:
                votes.setdefault(resp.hash, []).append(m.id)
        corrupt = odd_ones_out(votes, mine.hash, len(s.membership.members))
        for mid in corrupt:
            log.error("corruption check: member %x disagrees at revision %d (hashes: %s)",
                      mid, rev, {h: [f"{i:x}" for i in ids] for h, ids in votes.items()})
        active = set(s.alarms())
        for mid in corrupt:
            if (mid, rpc_pb2.CORRUPT) not in active:
                await s.propose(rpc_pb2.AlarmRequest(
                    action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=mid, alarm=rpc_pb2.CORRUPT))
        self.rounds += 1
        return corrupt
