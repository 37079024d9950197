"""etcd v3 KV semantics over the revisioned backend: Range, Put, DeleteRange, Txn, Compact.

Requests and responses are etcd's own protobuf messages (``etcdserverpb``). Reads run on
any member; writes run only in the apply path, in log order, each request in one backend
write transaction, so every member computes the same revisions. The behaviour follows
etcd v3.5 (server/etcdserver/apply.go): ``limit`` is ignored when sorting by anything
but ascending key or when revision filters are set, ``count`` is the number of keys in
the range before filters, a txn's compares and the lease and revision checks of its
operations are evaluated before anything is written, and reads inside a txn see its own
earlier writes. Requests are validated before they are proposed by
:mod:`raftkv.server.validate`; what still fails here (an undefined sort target in a
Txn proposed past it) raises an :class:`~raftkv.mvcc.errors.EtcdError`, which the apply
path answers and rolls back alike on every member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aetcd.rpc import kv_pb2, rpc_pb2

from raftkv.mvcc import errors

pb = rpc_pb2


_SORT_KEYS = {
    pb.RangeRequest.KEY: lambda kv: kv.key,
    pb.RangeRequest.VERSION: lambda kv: kv.version,
    pb.RangeRequest.CREATE: lambda kv: kv.create_revision,
    pb.RangeRequest.MOD: lambda kv: kv.mod_revision,
    pb.RangeRequest.VALUE: lambda kv: kv.value,
}


class StoredKV(Protocol):
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def lease(self) -> int: ...


class Keyspace(Protocol):
    """The part of the backend the KV semantics need (raftkv.storage.backend.Backend)."""

    def range(self, key: bytes, range_end: bytes | None, rev: int = 0,
              limit: int = 0) -> tuple[Sequence[StoredKV], int]: ...
    def current_revision(self) -> int: ...
    def compacted_revision(self) -> int: ...


class WriteTxn(Protocol):
    def range(self, key: bytes, range_end: bytes | None,
              limit: int = 0) -> tuple[Sequence[StoredKV], int]: ...
    def put(self, key: bytes, value: bytes, lease: int) -> StoredKV | None: ...
    def delete_range(self, key: bytes, range_end: bytes | None) -> Sequence[StoredKV]: ...


class Leases(Protocol):
    def exists(self, lease_id: int) -> bool: ...
    def attach(self, key: bytes, lease_id: int) -> None: ...  # a put wrote key with it


class Tx:
    """One request's view while it writes: the revision it started at and whether it wrote.

    As etcd's mvcc: a write lands at ``begin + 1``; reads inside the request see its own
    writes and report ``begin + 1`` once something changed, ``begin`` before.
    """

    def __init__(self, ks: Keyspace, wtxn: WriteTxn | None) -> None:
        self.ks = ks
        self.wtxn = wtxn
        self.begin = ks.current_revision()
        self.changed = False

    @property
    def rev(self) -> int:
        return self.begin + 1 if self.changed else self.begin

    # The Keyspace protocol, seeing this request's own writes (as etcd's txn reads do).
    def range(self, key: bytes, range_end: bytes | None, rev: int = 0,
              limit: int = 0) -> tuple[Sequence[StoredKV], int]:
        if self.changed and rev in (0, self.rev) and self.wtxn is not None:
            return self.wtxn.range(key, range_end, limit)
        return self.ks.range(key, range_end, rev, limit)

    def current_revision(self) -> int:
        return self.rev

    def compacted_revision(self) -> int:
        return self.ks.compacted_revision()

    def put(self, key: bytes, value: bytes, lease: int) -> None:
        assert self.wtxn is not None, "write in a read-only txn"
        self.wtxn.put(key, value, lease)
        self.changed = True

    def delete_range(self, key: bytes, end: bytes | None) -> Sequence[StoredKV]:
        assert self.wtxn is not None, "write in a read-only txn"
        deleted = self.wtxn.delete_range(key, end)
        if deleted:
            self.changed = True
        return deleted


def to_pb(kv: StoredKV, keys_only: bool = False) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key, create_revision=kv.create_revision, mod_revision=kv.mod_revision,
        version=kv.version, value=b"" if keys_only else kv.value, lease=kv.lease,
    )


def _end(range_end: bytes) -> bytes | None:
    """etcd's range_end: empty = the single key; b'\\0' = every key >= key."""
    return range_end if range_end else None


# --- reads -----------------------------------------------------------------------------------


def range_(ks: Keyspace, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
    """A Range at r.revision (0: current). Raises Compacted / FutureRev."""
    current = check_range_revision(ks, r)
    default_order, filters = order_and_filters(r)
    limit = r.limit if default_order and not filters else 0
    if limit > 0:
        # one more, to know whether there is "more"; clamped so that limit=2**63-1 stays
        # an SQLite INTEGER (an OverflowError here was a poison entry inside a txn)
        limit = min(limit, 1 << 62) + 1
    kvs, count = ks.range(r.key, _end(r.range_end), r.revision, limit)
    resp, out = select(r, kvs, count, current)
    if not r.count_only:
        resp.kvs.extend(to_pb(kv, r.keys_only) for kv in out)
    return resp


def check_range_revision(ks: Keyspace, r: rpc_pb2.RangeRequest) -> int:
    """The current revision, after refusing a future or compacted ``r.revision``."""
    current = ks.current_revision()
    if r.revision > current:
        raise errors.FutureRev()
    if 0 < r.revision < ks.compacted_revision():
        raise errors.Compacted()
    return current


def order_and_filters(r: rpc_pb2.RangeRequest) -> tuple[bool, bool]:
    default_order = r.sort_order == pb.RangeRequest.NONE or (
        r.sort_target == pb.RangeRequest.KEY and r.sort_order == pb.RangeRequest.ASCEND
    )
    filters = bool(r.min_mod_revision or r.max_mod_revision or r.min_create_revision
                   or r.max_create_revision)
    return default_order, filters


def select(r: rpc_pb2.RangeRequest, kvs: Sequence[StoredKV], count: int,
           current: int) -> tuple[rpc_pb2.RangeResponse, list[StoredKV]]:
    """Filter, sort and limit a range's kvs (sorted by key, ``count`` of them in the
    range); returns the response without its kvs, and the kvs it is to carry."""
    out = list(kvs)
    if r.max_mod_revision:
        out = [kv for kv in out if kv.mod_revision <= r.max_mod_revision]
    if r.min_mod_revision:
        out = [kv for kv in out if kv.mod_revision >= r.min_mod_revision]
    if r.max_create_revision:
        out = [kv for kv in out if kv.create_revision <= r.max_create_revision]
    if r.min_create_revision:
        out = [kv for kv in out if kv.create_revision >= r.min_create_revision]
    order = r.sort_order
    if r.sort_target != pb.RangeRequest.KEY and order == pb.RangeRequest.NONE:
        order = pb.RangeRequest.ASCEND
    if not (order == pb.RangeRequest.NONE or
            (r.sort_target == pb.RangeRequest.KEY and order == pb.RangeRequest.ASCEND)):
        key = _SORT_KEYS.get(r.sort_target)
        if key is None:  # the API refuses it first; a replayed old entry lands here
            raise errors.InvalidSortOption()
        # Go's sort.Sort is not stable; ties keep key order here, which etcd's
        # quicksort also yields for the small inputs tests use.
        out.sort(key=key, reverse=order == pb.RangeRequest.DESCEND)
    resp = rpc_pb2.RangeResponse(count=count)
    if r.limit > 0 and len(out) > r.limit:
        out = out[: r.limit]
        resp.more = True
    resp.header.revision = current
    return resp, out


# --- writes (apply path) -------------------------------------------------------------------


def put(tx: Tx, r: rpc_pb2.PutRequest, leases: Leases,
        check_lease: bool = True) -> rpc_pb2.PutResponse:
    if check_lease and r.lease and not leases.exists(r.lease):
        raise errors.LeaseNotFound()
    value, lease = r.value, r.lease
    prev: StoredKV | None = None
    if r.ignore_value or r.ignore_lease or r.prev_kv:
        kvs, _ = tx.range(r.key, None)
        prev = kvs[0] if kvs else None
    if (r.ignore_value or r.ignore_lease) and prev is None:
        raise errors.KeyNotFound()
    if r.ignore_value and prev is not None:
        value = prev.value
    if r.ignore_lease and prev is not None:
        lease = prev.lease
    tx.put(r.key, value, lease)
    if lease:
        leases.attach(r.key, lease)  # the lease -> keys index (revoke reads only those)
    resp = rpc_pb2.PutResponse()
    if r.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(to_pb(prev))
    resp.header.revision = tx.rev
    return resp


def delete_range(tx: Tx, r: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
    deleted = tx.delete_range(r.key, _end(r.range_end))
    resp = rpc_pb2.DeleteRangeResponse(deleted=len(deleted))
    if r.prev_kv:
        resp.prev_kvs.extend(to_pb(kv) for kv in deleted)
    resp.header.revision = tx.rev
    return resp


def is_read_only(r: rpc_pb2.TxnRequest) -> bool:
    for op in (*r.success, *r.failure):
        which = op.WhichOneof("request")
        if which in ("request_put", "request_delete_range"):
            return False
        if which == "request_txn" and not is_read_only(op.request_txn):
            return False
    return True


def _compare(ks: Keyspace, c: rpc_pb2.Compare) -> bool:
    kvs, _ = ks.range(c.key, _end(c.range_end))
    if not kvs:
        if c.target == pb.Compare.VALUE:
            return False
        return _compare_kv(c, None)
    return all(_compare_kv(c, kv) for kv in kvs)


def _compare_kv(c: rpc_pb2.Compare, kv: StoredKV | None) -> bool:
    t = c.target
    if t == pb.Compare.VALUE:
        a: bytes | int = kv.value if kv else b""
        b: bytes | int = c.value
    elif t == pb.Compare.CREATE:
        a, b = (kv.create_revision if kv else 0), c.create_revision
    elif t == pb.Compare.MOD:
        a, b = (kv.mod_revision if kv else 0), c.mod_revision
    elif t == pb.Compare.VERSION:
        a, b = (kv.version if kv else 0), c.version
    else:
        a, b = (kv.lease if kv else 0), c.lease
    res = (a > b) - (a < b)  # type: ignore[operator]
    return {
        pb.Compare.EQUAL: res == 0,
        pb.Compare.NOT_EQUAL: res != 0,
        pb.Compare.GREATER: res > 0,
        pb.Compare.LESS: res < 0,
    }.get(c.result, True)


def _path(ks: Keyspace, r: rpc_pb2.TxnRequest) -> list[bool]:
    """Which branch each (nested) txn takes, evaluated on the state before any write."""
    ok = all(_compare(ks, c) for c in r.compare)
    path = [ok]
    for op in r.success if ok else r.failure:
        if op.WhichOneof("request") == "request_txn":
            path += _path(ks, op.request_txn)
    return path


def _check_ops(ks: Keyspace, r: rpc_pb2.TxnRequest, path: list[bool], leases: Leases,
               writes: bool) -> int:
    """Check the chosen operations (leases exist, revisions valid); returns txns consumed."""
    ops = r.success if path[0] else r.failure
    used = 0
    for op in ops:
        which = op.WhichOneof("request")
        if which == "request_range":
            rr = op.request_range
            if rr.revision > ks.current_revision():
                raise errors.FutureRev()
            if 0 < rr.revision < ks.compacted_revision():
                raise errors.Compacted()
        elif which == "request_put" and writes:
            # etcd's checkPut order: the previous key for ignore_*, then the lease
            p = op.request_put
            if (p.ignore_value or p.ignore_lease) and not ks.range(p.key, None)[0]:
                raise errors.KeyNotFound()
            if p.lease and not leases.exists(p.lease):
                raise errors.LeaseNotFound()
        elif which == "request_txn":
            n = _check_ops(ks, op.request_txn, path[1 + used:], leases, writes)
            used += n + 1
    return used


def txn(tx: Tx, r: rpc_pb2.TxnRequest, leases: Leases) -> rpc_pb2.TxnResponse:
    """Evaluate a txn; ``tx.wtxn`` is None for a read-only txn (served without the log)."""
    path = _path(tx.ks, r)
    _check_ops(tx.ks, r, path, leases, tx.wtxn is not None)
    resp = rpc_pb2.TxnResponse()
    _apply(tx, r, path, resp, leases)
    resp.header.revision = tx.rev
    return resp


def _apply(tx: Tx, r: rpc_pb2.TxnRequest, path: list[bool], resp: rpc_pb2.TxnResponse,
           leases: Leases) -> int:
    resp.succeeded = path[0]
    used = 0
    for op in r.success if path[0] else r.failure:
        which = op.WhichOneof("request")
        out = resp.responses.add()
        if which == "request_range":
            out.response_range.CopyFrom(range_(tx, op.request_range))
        elif which == "request_put":
            out.response_put.CopyFrom(put(tx, op.request_put, leases, check_lease=False))
        elif which == "request_delete_range":
            out.response_delete_range.CopyFrom(delete_range(tx, op.request_delete_range))
        elif which == "request_txn":
            n = _apply(tx, op.request_txn, path[1 + used:], out.response_txn, leases)
            used += n + 1
    return used
