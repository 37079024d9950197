"""Issue 11 defect 1 on a running cluster: a committed entry whose content makes apply
fail (the issue's poison Txn, proposed past the API boundary) stops no member; after it
the consistent index has advanced, the revision has not, HashKV is equal on every member,
also after every member restarts; and a plain write succeeds afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from tests.server.inproc import InProcCluster

pytestmark = pytest.mark.slow  # three members with real sockets and fsync

POISON = rpc_pb2.TxnRequest(success=[
    rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"2")),
    rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a", sort_target=99)),  # type: ignore[arg-type]
])


async def test_poison_txn_stops_no_member(tmp_path: Path) -> None:
    c = InProcCluster(tmp_path)
    try:
        await c.start()
        lead = await c.wait_leader()
        await lead.put(b"a", b"1")
        rev = lead.server.backend.current_revision()
        with pytest.raises(errors.EtcdError):
            await lead.server.propose(POISON)  # the API would refuse it; the log must not care
        index = lead.server.applied_index
        await c.wait_applied(index)
        for n in c.running():
            assert not n.server.fatal_task().done(), "a member stopped on the poison entry"
            assert n.server.backend.consistent_index() >= index
            assert n.server.backend.current_revision() == rev
        hashes = {n.server.hash_kv(rev) for n in c.running()}
        assert len(hashes) == 1, hashes
        # restart every member: replaying the entry must not stop them either
        for i in range(3):
            await c.stop_member(i)
        for i in range(3):
            await c.start_member(i)
        lead = await c.wait_leader()
        put = await lead.put(b"b", b"after")
        assert put.header.revision == rev + 1
        await c.wait_applied(lead.server.applied_index)
        assert len({n.server.hash_kv(rev + 1) for n in c.running()}) == 1
        assert all(not n.server.fatal_task().done() for n in c.running())
    finally:
        await c.stop()
