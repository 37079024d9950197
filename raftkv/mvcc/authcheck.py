"""What each KV and lease request needs from the auth store, as etcd's authApplierV3
(server/etcdserver/apply/apply_auth.go) checks it: the same functions run at apply time for
writes (against the entry's user and auth revision, alike on every member) and at the API
for reads (Range, read-only Txn, watches, lease queries).

- Put: write on the key; read too with ``prev_kv``; and, when it attaches a lease that
  already holds keys, write on each of those keys (else the user could not revoke it).
- DeleteRange: write on the range; read too with ``prev_kv``.
- Txn: read on every compared range, then every operation of both branches, recursively.
- LeaseRevoke: write on every key the lease holds (a root user always may).
Nothing is checked while auth is off.
"""

from __future__ import annotations

from aetcd.rpc import rpc_pb2

from raftkv.mvcc.auth import AuthInfo, AuthStore
from raftkv.mvcc.kv import Keyspace
from raftkv.mvcc.lease import Lessor


def check_lease_puts(a: AuthStore, ai: AuthInfo, leases: Lessor, ks: Keyspace,
                     lease_id: int) -> None:
    if not a.enabled or not lease_id or not leases.exists(lease_id) or a.is_admin(ai):
        return
    for key in leases.keys(ks, lease_id):
        a.check_put(ai, key)


def check_put(a: AuthStore, ai: AuthInfo, leases: Lessor, ks: Keyspace,
              r: rpc_pb2.PutRequest) -> None:
    a.check_put(ai, r.key)
    check_lease_puts(a, ai, leases, ks, r.lease)
    if r.prev_kv:
        a.check_range(ai, r.key)


def check_delete(a: AuthStore, ai: AuthInfo, r: rpc_pb2.DeleteRangeRequest) -> None:
    a.check_delete(ai, r.key, r.range_end)
    if r.prev_kv:
        a.check_range(ai, r.key, r.range_end)


def check_txn(a: AuthStore, ai: AuthInfo, leases: Lessor, ks: Keyspace,
              r: rpc_pb2.TxnRequest) -> None:
    if not a.enabled:
        return
    for c in r.compare:
        a.check_range(ai, c.key, c.range_end)
    for op in (*r.success, *r.failure):
        which = op.WhichOneof("request")
        if which == "request_range":
            a.check_range(ai, op.request_range.key, op.request_range.range_end)
        elif which == "request_put":
            check_put(a, ai, leases, ks, op.request_put)
        elif which == "request_delete_range":
            d = op.request_delete_range
            if d.prev_kv:
                a.check_range(ai, d.key, d.range_end)
            a.check_delete(ai, d.key, d.range_end)
        elif which == "request_txn":
            check_txn(a, ai, leases, ks, op.request_txn)
