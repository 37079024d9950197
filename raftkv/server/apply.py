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

from raftkv.mvcc import authcheck, commands, errors, kv
from raftkv.mvcc.alarms import Alarms
from raftkv.mvcc.auth import AuthInfo, AuthStore
from raftkv.mvcc.commands import Command, Kind
from raftkv.mvcc.lease import Lessor
from raftkv.raft import ConfChange, ConfChangeType, Entry
from raftkv.server.membership import Member, Membership
from raftkv.server.tokens import SimpleTokens
from raftkv.storage.backend import Backend, Change
from raftkv.storage.errors import StorageError

log = logging.getLogger("raftkv.server.apply")

MEMBERS_META = "members"
# Not an entry's fault: the member must stop instead of skipping (and diverging).
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error, StorageError, OSError, MemoryError)


_REFUSED_WHEN_CORRUPT = frozenset({Kind.PUT, Kind.DELETE_RANGE, Kind.TXN, Kind.COMPACT,
                                   Kind.LEASE_GRANT, Kind.LEASE_REVOKE})
# etcd's needAdminPermission: only a root user may change the auth store (while auth is on)
AUTH_WRITE_KINDS = frozenset({
    Kind.AUTH_ENABLE, Kind.AUTH_DISABLE, Kind.USER_ADD, Kind.USER_DELETE,
    Kind.USER_CHANGE_PASSWORD, Kind.USER_GRANT_ROLE, Kind.USER_REVOKE_ROLE, Kind.ROLE_ADD,
    Kind.ROLE_DELETE, Kind.ROLE_GRANT_PERMISSION, Kind.ROLE_REVOKE_PERMISSION})


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
        self.alarms = Alarms(backend)
        self.leases = leases
        self.membership = membership
        self.is_leader = is_leader
        self.now = now
        self.metrics = metrics or ApplyMetrics(None)
        self.auth = AuthStore(backend)
        # this member's simple tokens (memory only; the server sets the TTL) and the first
        # log index that may give one: entries replayed from the WAL after a restart do
        # not bring back the tokens the member had before (etcd's die with the process)
        self.tokens = SimpleTokens(0, now)
        self.tokens_from = 0
        # the watch hub's notify: each revision's changes, once its transaction succeeded
        self.on_changes: Callable[[int, list[Change]], None] | None = None

    def reset(self, backend: Backend, membership: Membership) -> None:
        self.backend = backend
        self.membership = membership
        self.leases.reload(backend)
        self.alarms.reload(backend)
        self.auth.reload(backend)
        self.tokens.clear()  # as a restart: tokens are never in a snapshot

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
                result = self._execute(cmd, w, e.index)
                w.end(e.index)
        except errors.EtcdError as exc:
            self._end_only(e.index)
            return Applied(key, exc)
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            if cmd.kind in AUTH_WRITE_KINDS:
                self.auth.reload(self.backend)  # its memory may hold the rolled-back change
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

    def _execute(self, cmd: Command, w: Any, index: int) -> Any:
        tx = kv.Tx(self.backend, w)
        ai = AuthInfo(cmd.user, cmd.auth_revision)
        if cmd.kind in _REFUSED_WHEN_CORRUPT and self.alarms.corrupt():
            raise errors.Corrupt()  # etcd's applierV3Corrupt, alike on every member
        if cmd.kind in AUTH_WRITE_KINDS:
            return self._auth_write(cmd.kind, cmd.request, ai)
        if cmd.kind is Kind.AUTHENTICATE:
            self.auth.authenticate(cmd.request.name)
            if index < self.tokens_from:
                return rpc_pb2.AuthenticateResponse()  # replayed: its caller is gone
            return rpc_pb2.AuthenticateResponse(token=self.tokens.assign(
                cmd.request.name, cmd.request.password, index))
        if cmd.kind is Kind.ALARM:
            return self.alarms.apply(cmd.request)
        if cmd.kind is Kind.PUT:
            authcheck.check_put(self.auth, ai, self.leases, tx, cmd.request)
            return kv.put(tx, cmd.request, self.leases)
        if cmd.kind is Kind.DELETE_RANGE:
            authcheck.check_delete(self.auth, ai, cmd.request)
            return kv.delete_range(tx, cmd.request)
        if cmd.kind is Kind.TXN:
            authcheck.check_txn(self.auth, ai, self.leases, tx, cmd.request)
            return kv.txn(tx, cmd.request, self.leases)
        if cmd.kind is Kind.LEASE_GRANT:
            return self.leases.grant(cmd.request, self.now() if self.is_leader() else None)
        if cmd.kind is Kind.LEASE_REVOKE:
            authcheck.check_lease_puts(self.auth, ai, self.leases, tx, cmd.request.ID)
            return self.leases.revoke(tx, cmd.request.ID)
        if cmd.kind is Kind.LEASE_CHECKPOINT:
            return self.leases.checkpoint(cmd.request)
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

    def _auth_write(self, kind: Kind, r: Any, ai: AuthInfo) -> Any:
        """An auth store change by a root user (anyone while auth is off); tokens of a
        deleted user or a changed password go, and all of them when auth goes off."""
        self.auth.check_admin(ai)
        resp, drop = self.auth.apply(r)
        if drop is not None:
            self.tokens.invalidate_user(drop)
        if kind is Kind.AUTH_DISABLE:
            self.tokens.clear()
        return resp

    # --- configuration changes -----------------------------------------------------------

    def apply_membership(self, cc: ConfChange, index: int) -> errors.EtcdError | None:
        """The membership side of a committed conf change (Raft's side is the node's).

        An update that the membership refuses (unknown member, a peer URL another member
        has: etcd's ValidateConfigurationChange at apply) changes nothing on any member;
        the refusal is returned for the proposer."""
        ms = self.membership
        if cc.type is ConfChangeType.UPDATE_NODE:
            refusal = self._update_member(cc)
            if refusal is not None:
                self._end_only(index)
                return refusal
        elif cc.type is ConfChangeType.REMOVE_NODE:
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
        return None

    def _update_member(self, cc: ConfChange) -> errors.EtcdError | None:
        """MemberUpdate: only the peer URLs change (name, client URLs, learner status stay)."""
        ms = self.membership
        old = ms.members.get(cc.node_id)
        if old is None:
            return errors.MemberNotFound()
        try:
            new = Member.from_json(cc.context)
        except ValueError as exc:  # MembershipError
            log.error("conf change updating %x carries a malformed member: %s", cc.node_id, exc)
            return ApplyRejected()
        if not new.peer_urls:
            return errors.MemberBadURLs()
        taken = {u for m in ms.members.values() if m.id != cc.node_id for u in m.peer_urls}
        if taken & set(new.peer_urls):
            return errors.PeerURLExist()
        old.peer_urls = list(new.peer_urls)
        return None
