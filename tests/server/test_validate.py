"""raftkv.server.validate: etcd 3.6.16's v3rpc checks, without a server (pure functions)."""

from __future__ import annotations

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.server import validate as v

pb = rpc_pb2


def put(key: bytes, **kw: object) -> rpc_pb2.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, **kw))  # type: ignore[arg-type]


def rng(key: bytes, **kw: object) -> rpc_pb2.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, **kw))  # type: ignore[arg-type]


def dele(key: bytes, end: bytes = b"") -> rpc_pb2.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end))


def txn(*ops: rpc_pb2.RequestOp, failure: tuple[rpc_pb2.RequestOp, ...] = (),
        compare: tuple[rpc_pb2.Compare, ...] = ()) -> rpc_pb2.TxnRequest:
    return pb.TxnRequest(compare=compare, success=ops, failure=failure)


def nested(t: rpc_pb2.TxnRequest) -> rpc_pb2.RequestOp:
    return pb.RequestOp(request_txn=t)


def refused(fn: object, *args: object) -> errors.EtcdError:
    with pytest.raises(errors.EtcdError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_the_poison_txn_is_an_invalid_sort_option() -> None:
    exc = refused(v.check_txn, txn(put(b"a", value=b"2"), rng(b"a", sort_target=99)))
    assert (exc.code, exc.message) == ("INVALID_ARGUMENT", "etcdserver: invalid sort option")


@pytest.mark.parametrize("kw", [{"sort_target": 99}, {"sort_target": -1},
                                {"sort_order": 3}, {"sort_order": -7}])
def test_range_sort_enums_must_be_defined(kw: dict[str, int]) -> None:
    exc = refused(v.check_range, pb.RangeRequest(key=b"k", **kw))  # type: ignore[arg-type]
    assert isinstance(exc, errors.InvalidSortOption)
    # and nested three levels deep
    deep = txn(nested(txn(nested(txn(rng(b"k", **kw))))))
    assert isinstance(refused(v.check_txn, deep), errors.InvalidSortOption)


def test_every_defined_sort_option_is_accepted() -> None:
    for order in pb.RangeRequest.SortOrder.values():
        for target in pb.RangeRequest.SortTarget.values():
            v.check_range(pb.RangeRequest(key=b"k", sort_order=order, sort_target=target))


def test_empty_keys() -> None:
    assert isinstance(refused(v.check_range, pb.RangeRequest()), errors.EmptyKey)
    assert isinstance(refused(v.check_put, pb.PutRequest(value=b"x")), errors.EmptyKey)
    assert isinstance(refused(v.check_delete, pb.DeleteRangeRequest()), errors.EmptyKey)
    assert isinstance(refused(v.check_txn, txn(compare=(pb.Compare(),))), errors.EmptyKey)


def test_put_ignore_flags() -> None:
    assert isinstance(refused(v.check_put, pb.PutRequest(key=b"k", value=b"v",
                                                         ignore_value=True)),
                      errors.ValueProvided)
    assert isinstance(refused(v.check_put, pb.PutRequest(key=b"k", lease=5, ignore_lease=True)),
                      errors.LeaseProvided)
    v.check_put(pb.PutRequest(key=b"k", ignore_value=True, ignore_lease=True))


@pytest.mark.parametrize("kw", [{"result": 4}, {"result": -1}, {"target": 5},
                                {"target": 1 << 30}])
def test_compare_enums_must_be_defined(kw: dict[str, int]) -> None:
    c = pb.Compare(key=b"k", **kw)  # type: ignore[arg-type]
    exc = refused(v.check_txn, txn(compare=(c,)))
    assert isinstance(exc, errors.InvalidCompare) and exc.code == "INVALID_ARGUMENT"
    v.check_txn(txn(compare=(pb.Compare(key=b"k", result=pb.Compare.LESS,
                                        target=pb.Compare.LEASE, lease=3),)))


def test_an_empty_request_op_is_key_not_found() -> None:
    assert isinstance(refused(v.check_txn, txn(pb.RequestOp())), errors.KeyNotFound)
    assert isinstance(refused(v.check_txn, txn(failure=(pb.RequestOp(),))), errors.KeyNotFound)


def test_txn_op_budget_shrinks_with_nesting() -> None:
    wide = txn(*(rng(b"k%d" % i) for i in range(129)))
    assert isinstance(refused(v.check_txn, wide), errors.TooManyOps)
    v.check_txn(txn(*(rng(b"k%d" % i) for i in range(128))))
    # 100 ops at the top leave 28 for the nested txn (etcd: maxTxnOps - opc)
    inner_ok = txn(*(rng(b"i%d" % i) for i in range(28)))
    inner_big = txn(*(rng(b"i%d" % i) for i in range(29)))
    top = [rng(b"t%d" % i) for i in range(99)]
    v.check_txn(txn(*top, nested(inner_ok)))
    assert isinstance(refused(v.check_txn, txn(*top, nested(inner_big))), errors.TooManyOps)
    assert isinstance(refused(v.check_txn, wide, 128), errors.TooManyOps)
    v.check_txn(wide, 200)


def test_deep_empty_txns_are_fine() -> None:
    t = txn()
    for _ in range(45):  # protobuf (upb) refuses to decode more than 100 levels
        t = txn(nested(t))
    v.check_txn(t)


def test_duplicate_puts_and_put_delete_overlaps() -> None:
    dup = v.check_txn
    assert isinstance(refused(dup, txn(put(b"a"), put(b"a"))), errors.DuplicateKey)
    assert isinstance(refused(dup, txn(dele(b"a", b"c"), put(b"b"))), errors.DuplicateKey)
    # etcd compares range_end literally here: a delete to "\0" overlaps nothing
    v.check_txn(txn(dele(b"a", b"\0"), put(b"zz")))
    assert isinstance(refused(dup, txn(dele(b"a"), put(b"a"))), errors.DuplicateKey)
    v.check_txn(txn(dele(b"a"), put(b"b")))
    v.check_txn(txn(dele(b"a", b"c"), put(b"c")))
    # a nested txn's branches may both put a key; the outer branch may not put it again
    inner = txn(put(b"x"), failure=(put(b"x"),))
    v.check_txn(txn(nested(inner)))
    assert isinstance(refused(dup, txn(nested(inner), put(b"x"))), errors.DuplicateKey)
    # a nested delete covers an outer put, and an outer delete covers a nested put
    assert isinstance(refused(dup, txn(nested(txn(dele(b"p", b"q"))), put(b"pp"))),
                      errors.DuplicateKey)
    assert isinstance(refused(dup, txn(dele(b"p", b"q"), nested(txn(put(b"pp"))))),
                      errors.DuplicateKey)
    # the two branches of one txn are independent
    v.check_txn(txn(put(b"a"), failure=(put(b"a"),)))


def test_lease_ttl_limit() -> None:
    exc = refused(v.check_lease_grant, pb.LeaseGrantRequest(TTL=errors.MAX_LEASE_TTL + 1))
    assert (exc.code, exc.message) == ("OUT_OF_RANGE", "etcdserver: too large lease TTL")
    v.check_lease_grant(pb.LeaseGrantRequest(TTL=errors.MAX_LEASE_TTL))
    v.check_lease_grant(pb.LeaseGrantRequest(TTL=-5))  # raised to the minimum TTL


def test_request_size() -> None:
    big = pb.PutRequest(key=b"k", value=b"x" * 2000)
    assert isinstance(refused(v.check_size, big, 1000), errors.RequestTooLarge)
    v.check_size(big, 4000)


def test_alarm_action_must_be_defined() -> None:
    for action in (-1, 3, 1 << 20):
        exc = refused(v.check_alarm, pb.AlarmRequest(action=action))  # type: ignore[arg-type]
        assert exc.code == "INVALID_ARGUMENT"
    for action in pb.AlarmRequest.AlarmAction.values():
        v.check_alarm(pb.AlarmRequest(action=action, alarm=99))  # type: ignore[arg-type]
