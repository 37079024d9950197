"""Issue 11 defect 5: request IDs and ReadIndex contexts are unique across members and
restarts. Before: a per-process counter from 1 XOR the member ID shifted by 40 (so only its
low 24 bits counted): a restarted member reused IDs still in the log, and two members
whose IDs share their low 24 bits proposed the same IDs."""

from __future__ import annotations

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import commands
from raftkv.server.waiters import read_context


def test_a_restarted_member_never_reuses_an_id() -> None:
    first = commands.RequestIDs()
    used = {first.next() for _ in range(10_000)}
    again = commands.RequestIDs()  # the next process of the same member
    assert again.next() > max(used)


def test_members_sharing_low_bits_are_told_apart() -> None:
    a, b = 0x1000_0000_0012_3456, 0x2000_0000_0012_3456  # equal low 24 bits
    ca = commands.Command(commands.Kind.PUT, 7, rpc_pb2.PutRequest(key=b"k"), a)
    cb = commands.Command(commands.Kind.PUT, 7, rpc_pb2.PutRequest(key=b"k"), b)
    da, db = commands.decode(ca.encode()), commands.decode(cb.encode())
    assert (da.proposer, da.request_id) != (db.proposer, db.request_id)
    assert read_context(a, 7) != read_context(b, 7)


def test_version_1_entries_still_decode() -> None:
    body = rpc_pb2.PutRequest(key=b"k", value=b"v").SerializeToString()
    old = bytes([1, commands.Kind.PUT]) + (42).to_bytes(8, "big") + body
    cmd = commands.decode(old)
    assert (cmd.kind, cmd.request_id, cmd.proposer, cmd.request.value) == (
        commands.Kind.PUT, 42, 0, b"v")
