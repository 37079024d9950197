"""Request validation at the API boundary, as etcd 3.6.16's v3rpc layer does it.

Every client request is checked here before anything is proposed to Raft or read from
the backend, so no entry the apply path cannot handle ever reaches the log. The checks
follow etcd's ``server/etcdserver/api/v3rpc/key.go`` (``checkRangeRequest``,
``checkPutRequest``, ``checkDeleteRequest``, ``checkTxnRequest``, ``checkRequestOp``,
``checkIntervals``) with etcd's gRPC codes and messages (``rpctypes``); each failure is an
:class:`raftkv.mvcc.errors.EtcdError`.

Invariants:

- pure: no I/O, no server state; a function of the request and the configured limits, so
  every member (and the unit tests) reach the same verdict;
- an enum field must name a value its protobuf enum defines. etcd refuses unknown sort
  orders and targets; it accepts unknown compare results and targets and evaluates them
  to an arbitrary answer. raftkv refuses those too (``InvalidCompare``), a deliberate
  difference recorded in tests/fuzz/differences.py;
- a txn's budget of operations shrinks with nesting exactly as etcd's
  (``max_ops - opc`` per level), an empty ``RequestOp`` is "key not found", and the
  put/delete overlap check runs after the structural checks (no quadratic blow-up on a
  request that is refused anyway);
- lease TTLs above etcd's ``MaxLeaseTTL`` are refused before proposing;
- a request whose encoding exceeds ``--max-request-bytes`` is "request is too large"
  (the proposal path checks its own encoded entry again).
"""

from __future__ import annotations

from collections.abc import Sequence

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors

pb = rpc_pb2
DEFAULT_MAX_TXN_OPS = 128  # etcd's --max-txn-ops default


_SORT_ORDERS = frozenset(pb.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(pb.RangeRequest.SortTarget.values())
_COMPARE_RESULTS = frozenset(pb.Compare.CompareResult.values())
_COMPARE_TARGETS = frozenset(pb.Compare.CompareTarget.values())


def check_size(request: object, max_bytes: int) -> None:
    """A request bigger than --max-request-bytes can never be proposed."""
    size = request.ByteSize()  # type: ignore[attr-defined]
    if max_bytes > 0 and size > max_bytes:
        raise errors.RequestTooLarge()


def check_range(r: rpc_pb2.RangeRequest) -> None:
    if not r.key:
        raise errors.EmptyKey()
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise errors.InvalidSortOption()


def check_put(r: rpc_pb2.PutRequest) -> None:
    if not r.key:
        raise errors.EmptyKey()
    if r.ignore_value and r.value:
        raise errors.ValueProvided()
    if r.ignore_lease and r.lease:
        raise errors.LeaseProvided()


def check_delete(r: rpc_pb2.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.EmptyKey()


def check_compare(c: rpc_pb2.Compare) -> None:
    if not c.key:
        raise errors.EmptyKey()
    if c.result not in _COMPARE_RESULTS or c.target not in _COMPARE_TARGETS:
        raise errors.InvalidCompare()


def check_txn(r: rpc_pb2.TxnRequest, max_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """The whole txn: structure (recursively), then put/delete overlaps per branch."""
    _check_txn_structure(r, max_ops)
    check_intervals(r.success)
    check_intervals(r.failure)


def _check_txn_structure(r: rpc_pb2.TxnRequest, max_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_ops:
        raise errors.TooManyOps()
    for c in r.compare:
        check_compare(c)
    for op in (*r.success, *r.failure):
        check_op(op, max_ops - opc)


def check_op(op: rpc_pb2.RequestOp, max_ops: int) -> None:
    which = op.WhichOneof("request")
    if which == "request_range":
        check_range(op.request_range)
    elif which == "request_put":
        check_put(op.request_put)
    elif which == "request_delete_range":
        check_delete(op.request_delete_range)
    elif which == "request_txn":
        _check_txn_structure(op.request_txn, max_ops)
    else:
        raise errors.KeyNotFound()  # an empty RequestOp, as etcd answers it


# --- put/delete overlaps (etcd's checkIntervals) -------------------------------------------

_Interval = tuple[bytes, bytes | None]  # [start, end); end None = the single key start


def _interval(d: rpc_pb2.DeleteRangeRequest) -> _Interval:
    # As etcd's checkIntervals, range_end is taken literally: a delete to b"\0" ("every
    # key >= key" when applied) is the empty interval [key, "\0") here, so etcd accepts
    # a put after it in the same branch, and so does raftkv (ops apply in order).
    return (d.key, d.range_end or None)


def _hits(key: bytes, dels: Sequence[_Interval]) -> bool:
    for start, end in dels:
        if end is None:
            if key == start:
                return True
        elif start <= key < end:
            return True
    return False


def check_intervals(ops: Sequence[rpc_pb2.RequestOp]) -> tuple[set[bytes], list[_Interval]]:
    """A branch may not put one key twice, nor put a key it (or a nested txn) deletes;
    a nested txn's then- and else-branches may put the same key (only one runs)."""
    dels = [_interval(op.request_delete_range) for op in ops
            if op.WhichOneof("request") == "request_delete_range"]
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = check_intervals(op.request_txn.success)
        else_puts, else_dels = check_intervals(op.request_txn.failure)
        for k in then_puts:
            if k in puts or _hits(k, dels):
                raise errors.DuplicateKey()
            puts.add(k)
        for k in else_puts:
            if (k in puts and k not in then_puts) or _hits(k, dels):
                raise errors.DuplicateKey()
            puts.add(k)
        dels.extend(then_dels)
        dels.extend(else_dels)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or _hits(k, dels):
            raise errors.DuplicateKey()
        puts.add(k)
    return puts, dels


# --- leases -------------------------------------------------------------------------------


def check_lease_grant(r: rpc_pb2.LeaseGrantRequest) -> None:
    if r.TTL > errors.MAX_LEASE_TTL:
        raise errors.LeaseTTLTooLarge()


# --- maintenance ----------------------------------------------------------------------------

_ALARM_ACTIONS = frozenset(pb.AlarmRequest.AlarmAction.values())


def check_alarm(r: rpc_pb2.AlarmRequest) -> None:
    """An undefined alarm action is refused (etcd 3.6.16 applies it to a nil response and
    the member serving the request panics)."""
    if r.action not in _ALARM_ACTIONS:
        raise errors.InvalidAlarmAction()
