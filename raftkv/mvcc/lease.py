"""Leases as etcd keeps them: a replicated table of granted TTLs, and the leader's clock.

The table (lease ID -> granted TTL) changes only in the apply path (grant, revoke) and is
stored in the backend meta ``leases`` inside the same write transaction as the keys a
revoke deletes, so every member agrees. Expiry is the leader's business alone: on
becoming leader it gives every lease a fresh deadline (TTL plus an election timeout, as
etcd's promote does), keep-alives renew deadlines on the leader, and a lease past its
deadline is revoked through the log. Followers track no deadlines.
"""

from __future__ import annotations

import json
import math
from typing import Protocol

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.kv import Keyspace, Tx

MAX_LEASE_TTL = errors.MAX_LEASE_TTL
META = "leases"


LeaseTTLTooLarge = errors.LeaseTTLTooLarge


class Backendish(Keyspace, Protocol):
    def meta_get(self, name: str) -> bytes | None: ...
    def meta_put(self, name: str, value: bytes) -> None: ...


class Lessor:
    def __init__(self, backend: Backendish, min_ttl: int) -> None:
        self.backend = backend
        self.min_ttl = min_ttl
        raw = backend.meta_get(META)
        self.ttls: dict[int, int] = {int(k): int(v) for k, v in json.loads(raw).items()} if (
            raw) else {}
        self.deadlines: dict[int, float] = {}  # leader only: lease -> monotonic deadline

    def reload(self, backend: Backendish) -> None:
        """After a snapshot install: the table comes from the new backend."""
        self.__init__(backend, self.min_ttl)  # type: ignore[misc]

    def exists(self, lease_id: int) -> bool:
        return lease_id in self.ttls

    def _store(self) -> None:
        self.backend.meta_put(META, json.dumps({str(k): v for k, v in self.ttls.items()}).encode())

    # --- apply path (every member) --------------------------------------------------------

    def grant(self, req: rpc_pb2.LeaseGrantRequest,
              now: float | None) -> rpc_pb2.LeaseGrantResponse:
        if req.TTL > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        if req.ID in self.ttls:
            raise errors.LeaseExist()
        ttl = max(req.TTL, self.min_ttl)
        self.ttls[req.ID] = ttl
        self._store()
        if now is not None:
            self.deadlines[req.ID] = now + ttl
        return rpc_pb2.LeaseGrantResponse(ID=req.ID, TTL=ttl)

    def revoke(self, tx: Tx, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        if lease_id not in self.ttls:
            raise errors.LeaseNotFound()
        for key in self.keys(tx, lease_id):
            tx.delete_range(key, None)
        del self.ttls[lease_id]
        self.deadlines.pop(lease_id, None)
        self._store()
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = tx.rev
        return resp

    def keys(self, ks: Keyspace, lease_id: int) -> list[bytes]:
        kvs, _ = ks.range(b"\0", b"\0")
        return [kv.key for kv in kvs if kv.lease == lease_id]

    # --- the leader's clock --------------------------------------------------------------

    def promote(self, now: float, extend: float) -> None:
        self.deadlines = {lid: now + ttl + extend for lid, ttl in self.ttls.items()}

    def demote(self) -> None:
        self.deadlines = {}

    def renew(self, lease_id: int, now: float) -> int:
        ttl = self.ttls.get(lease_id)
        if ttl is None:
            raise errors.LeaseNotFound()
        self.deadlines[lease_id] = now + ttl
        return ttl

    def remaining(self, lease_id: int, now: float) -> int:
        if lease_id not in self.ttls:
            raise errors.LeaseNotFound()
        deadline = self.deadlines.get(lease_id)
        if deadline is None:
            return self.ttls[lease_id]
        return max(0, math.ceil(deadline - now))

    def expired(self, now: float) -> list[int]:
        return [lid for lid, d in self.deadlines.items() if d <= now and lid in self.ttls]
