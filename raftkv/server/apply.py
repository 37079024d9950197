"""Apply: one committed Raft entry -> one backend transaction, deterministically and totally.

This module is the state machine of a member and knows nothing of asyncio, the network or
the Raft node: given the same backend state and the same entry, every member computes the
same writes, the same revision and the same result, so it is tested without an event loop
(tests/server/test_apply.py).

Invariants:
- Every normal entry above the backend's consistent index ends with the consistent index
  at the entry's index, in the same SQLite transaction as its writes (or alone).
- Apply is total: an exception caused by an entry's *content* (an EtcdError the request
  earns, or any other exception such as a KeyError on an out-of-range enum) rolls back
  everything that entry wrote, answers its proposer with an error, is logged with the
  index and counted (``raftkv_server_apply_rejected_total``), and the member goes on. The
  revision does not move; the consistent index does. Every member rejects alike because
  the exception depends only on the entry and the replicated state.
- Storage errors (``sqlite3.Error``, ``StorageError``, ``OSError``, ``MemoryError``) are
  not the entry's fault and propagate: the member stops rather than diverge.
- Results are keyed by (proposer member ID, request ID) (see ``commands``), so a result
  reaches only the request that proposed it, on the member that proposed it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aetcd.rpc import rpc_pb2
from prometheus_client import CollectorRegistry, Counter

from raftkv.mvcc import commands, errors, kv
from raftkv.mvcc.commands import Command, Kind
from raftkv.mvcc.lease import Lessor
from raftkv.raft import ConfChange, ConfChangeType, Entry
from raftkv.server.membership import Member, Membership
from raftkv.storage.backend import Backend, Change
from raftkv.storage.errors import StorageError

log = logging.getLogger("raftkv.server.apply")

MEMBERS_META = "members"
# Not an entry's fault: the member must stop instead of skipping (and diverging).
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error, StorageError, OSError, MemoryError)


class ApplyRejected(errors.EtcdError):
    """A committed entry whose content made apply fail; every member rejects it alike."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: the request could not be applied"


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one normal entry: whom to answer (None: nobody) and with what."""

    key: tuple[int, int] | None  # (proposer member ID, request ID)
    result: Any  # a response message, or an EtcdError to raise at the proposer


class ApplyMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.rejected = Counter(
            "raftkv_server_apply_rejected",
            "Committed entries whose content made apply fail; rolled back on every member.",
            registry=registry)


class Applier:
    """The KV, lease and membership state machine over one backend.

    ``backend`` and ``leases`` are replaced by the snapshot lifecycle after an install
    (``reset``). ``is_leader`` tells the lease table whether to start a deadline clock."""

    def __init__(self, backend: Backend, leases: Lessor, membership: Membership,
                 is_leader: Callable[[], bool], now: Callable[[], float],
                 metrics: ApplyMetrics | None = None) -> None:
        self.backend = backend
        self.leases = leases
        self.membership = membership
        self.is_leader = is_leader
        self.now = now
        self.metrics = metrics or ApplyMetrics(None)
        # the watch hub's notify: each revision's changes, once its transaction succeeded
        self.on_changes: Callable[[int, list[Change]], None] | None = None

    def reset(self, backend: Backend, membership: Membership) -> None:
        self.backend = backend
        self.membership = membership
        self.leases.reload(backend)

    # --- normal entries ------------------------------------------------------------------

    def apply_normal(self, e: Entry) -> Applied:
        """Apply one normal entry above the consistent index."""
        if not e.data:
            self._end_only(e.index)
            return Applied(None, None)
        try:
            cmd = commands.decode(e.data)
        except commands.CommandError as exc:
            # Every member sees the same bytes, so every member skips it alike.
            log.error("skipping undecodable entry %d: %s", e.index, exc)
            self.metrics.rejected.inc()
            self._end_only(e.index)
            return Applied(None, None)
        key = (cmd.proposer, cmd.request_id)
        try:
            with self.backend.write_txn() as w:
                result = self._execute(cmd, w)
                w.end(e.index)
        except errors.EtcdError as exc:
            self._end_only(e.index)
            return Applied(key, exc)
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            log.error("entry %d (%s) rejected on apply, rolled back: %s: %s", e.index,
                      cmd.kind.name, type(exc).__name__, exc)
            self.metrics.rejected.inc()
            self._end_only(e.index)
            return Applied(key, ApplyRejected(
                f"etcdserver: the request could not be applied: {type(exc).__name__}"))
        if w.changes_made and self.on_changes is not None:
            self.on_changes(w.rev, w.changes_made)
        return Applied(key, result)

    def _end_only(self, index: int) -> None:
        with self.backend.write_txn() as w:
            w.end(index)

    def _execute(self, cmd: Command, w: Any) -> Any:
        tx = kv.Tx(self.backend, w)
        if cmd.kind is Kind.PUT:
            return kv.put(tx, cmd.request, self.leases)
        if cmd.kind is Kind.DELETE_RANGE:
            return kv.delete_range(tx, cmd.request)
        if cmd.kind is Kind.TXN:
            return kv.txn(tx, cmd.request, self.leases)
        if cmd.kind is Kind.LEASE_GRANT:
            return self.leases.grant(cmd.request, self.now() if self.is_leader() else None)
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
            self.backend.schedule_compact(rev)  # rows are deleted by compact_step, paged
            resp = rpc_pb2.CompactionResponse()
            resp.header.revision = self.backend.current_revision()
            return resp
        raise errors.NotCapable(f"etcdserver: {cmd.kind.name.lower()} is not supported yet")

    # --- configuration changes -----------------------------------------------------------

    def apply_membership(self, cc: ConfChange, index: int) -> None:
        """The membership side of a committed conf change (Raft's side is the node's)."""
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
            w.end(index)
