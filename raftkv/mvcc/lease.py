"""Leases as etcd keeps them: a replicated table of granted TTLs, and the leader's clock.

The table (lease ID -> granted TTL) changes only in the apply path (grant, revoke) and is
stored in the backend meta inside the same write transaction as the keys a revoke
deletes, so every member agrees. Expiry is the leader's business alone: on becoming
leader it gives every lease a fresh deadline (its remaining TTL plus an election timeout,
as etcd's promote does), keep-alives renew deadlines on the leader, and a lease past its
deadline is revoked through the log. Followers track no deadlines.

Checkpoints (etcd's LeaseCheckpoint): the leader periodically replicates each lease's
remaining TTL (``checkpoints``); every member records it (``checkpoint``, persisted with
the TTL, as etcd 3.6 always persists), and a new leader starts the lease's clock from it
instead of the full TTL, so a lease's life survives leader changes. A renewal clears the
recorded value (the leader replicates a checkpoint of 0 before renewing).

Invariants:

- a bucket maps lease ID -> TTL, or -> [TTL, remaining TTL] for a checkpointed lease;
- persistence is incremental: the table is split into ``BUCKETS`` meta blobs by lease ID,
  and a grant or revoke rewrites only its lease's bucket (the whole-table blob of older
  versions, meta ``leases``, is read once and split up);
- an index lease -> keys is a superset of the keys attached to each lease: every put with
  a lease adds its key (``attach``, called by ``raftkv.mvcc.kv.put``), and it is built by
  one scan the first time it is needed (and again after a snapshot install). A revoke
  reads only its candidates and deletes those that still carry the lease, in key order,
  so every member deletes the same keys whatever extra candidates its index holds; a
  revoke never scans the keyspace once the index is built.
"""

from __future__ import annotations

import json
import math
from typing import Protocol

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.mvcc.kv import Keyspace, Tx

MAX_LEASE_TTL = errors.MAX_LEASE_TTL
LEGACY_META = "leases"  # the whole table in one blob (before buckets)
BUCKETS = 256
META = LEGACY_META  # kept for callers naming the table's meta key


LeaseTTLTooLarge = errors.LeaseTTLTooLarge


def bucket_name(lease_id: int) -> str:
    return f"leases/{lease_id % BUCKETS:02x}"


class Backendish(Keyspace, Protocol):
    def meta_get(self, name: str) -> bytes | None: ...
    def meta_put(self, name: str, value: bytes) -> None: ...


class Lessor:
    def __init__(self, backend: Backendish, min_ttl: int) -> None:
        self.backend = backend
        self.min_ttl = min_ttl
        self.ttls: dict[int, int] = {}
        self.checkpointed: dict[int, int] = {}  # lease -> remaining TTL recorded (> 0)
        for b in range(BUCKETS):
            raw = backend.meta_get(f"leases/{b:02x}")
            if raw:
                for k, v in json.loads(raw).items():
                    if isinstance(v, list):
                        self.ttls[int(k)], self.checkpointed[int(k)] = int(v[0]), int(v[1])
                    else:
                        self.ttls[int(k)] = int(v)
        legacy = backend.meta_get(LEGACY_META)
        if legacy and legacy != b"{}":
            old = {int(k): int(v) for k, v in json.loads(legacy).items()}
            self.ttls.update(old)
            for name in sorted({bucket_name(lid) for lid in old}):
                self._store_bucket(name)
            backend.meta_put(LEGACY_META, b"{}")
        self.deadlines: dict[int, float] = {}  # leader only: lease -> monotonic deadline
        self._keys: dict[int, set[bytes]] | None = None  # built on first use

    def reload(self, backend: Backendish) -> None:
        """After a snapshot install: the table (and the index) come from the new backend."""
        self.__init__(backend, self.min_ttl)  # type: ignore[misc]

    def exists(self, lease_id: int) -> bool:
        return lease_id in self.ttls

    def _store_bucket(self, name: str) -> None:
        members = {str(k): [v, self.checkpointed[k]] if k in self.checkpointed else v
                   for k, v in self.ttls.items() if bucket_name(k) == name}
        self.backend.meta_put(name, json.dumps(members, sort_keys=True).encode())

    def _store(self, lease_id: int) -> None:
        self._store_bucket(bucket_name(lease_id))

    # --- the lease -> keys index ---------------------------------------------------------

    def _index(self, ks: Keyspace) -> dict[int, set[bytes]]:
        if self._keys is None:
            index: dict[int, set[bytes]] = {}
            kvs, _ = ks.range(b"\0", b"\0")
            for kv in kvs:
                if kv.lease:
                    index.setdefault(kv.lease, set()).add(kv.key)
            self._keys = index
        return self._keys

    def attach(self, key: bytes, lease_id: int) -> None:
        """A put wrote ``key`` with ``lease_id`` (apply path)."""
        if self._keys is not None and lease_id:
            self._keys.setdefault(lease_id, set()).add(key)

    def keys(self, ks: Keyspace, lease_id: int) -> list[bytes]:
        """The keys attached to ``lease_id`` in ``ks``, in key order."""
        out = []
        for key in sorted(self._index(ks).get(lease_id, ())):
            kvs, _ = ks.range(key, None)
            if kvs and kvs[0].lease == lease_id:
                out.append(key)
        return out

    # --- apply path (every member) --------------------------------------------------------

    def grant(self, req: rpc_pb2.LeaseGrantRequest,
              now: float | None) -> rpc_pb2.LeaseGrantResponse:
        if req.TTL > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        if req.ID in self.ttls:
            raise errors.LeaseExist()
        ttl = max(req.TTL, self.min_ttl)
        self.ttls[req.ID] = ttl
        self.checkpointed.pop(req.ID, None)
        self._store(req.ID)
        if now is not None:
            self.deadlines[req.ID] = now + ttl
        return rpc_pb2.LeaseGrantResponse(ID=req.ID, TTL=ttl)

    def revoke(self, tx: Tx, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        if lease_id not in self.ttls:
            raise errors.LeaseNotFound()
        for key in self.keys(tx, lease_id):
            tx.delete_range(key, None)
        del self.ttls[lease_id]
        self.checkpointed.pop(lease_id, None)
        self.deadlines.pop(lease_id, None)
        if self._keys is not None:
            self._keys.pop(lease_id, None)
        self._store(lease_id)
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = tx.rev
        return resp

    def checkpoint(self, req: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        """Record remaining TTLs (0 clears); unknown leases are skipped, as etcd's. The
        leader's own deadlines do not change: promotion is what reads the record."""
        for cp in req.checkpoints:
            if cp.ID not in self.ttls:
                continue
            if cp.remaining_TTL > 0:
                self.checkpointed[cp.ID] = min(int(cp.remaining_TTL), self.ttls[cp.ID])
            elif self.checkpointed.pop(cp.ID, None) is None:
                continue
            self._store(cp.ID)
        return rpc_pb2.LeaseCheckpointResponse()

    # --- the leader's clock --------------------------------------------------------------

    def promote(self, now: float, extend: float) -> None:
        self.deadlines = {lid: now + self.checkpointed.get(lid, ttl) + extend
                          for lid, ttl in self.ttls.items()}

    def checkpoints(self, now: float) -> list[tuple[int, int]]:
        """(lease, remaining TTL) worth recording: those the leader's clock has moved
        below their TTL (etcd skips the others too), in lease order."""
        out = []
        for lid in sorted(self.deadlines):
            ttl = self.ttls.get(lid)
            if ttl is None:
                continue
            left = max(1, math.ceil(self.deadlines[lid] - now))
            if left < ttl and self.checkpointed.get(lid) != left:
                out.append((lid, left))
        return out

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
