"""Maintenance RPCs that read the whole backend: Snapshot, HashKV and Hash.

- ``snapshot_stream``: etcd 3.6's Snapshot framing (v3rpc/maintenance.go): the database
  is sent in 32 KiB blobs, each with ``remaining_bytes`` = total - sent so far, then one
  last message whose blob is the 32-byte SHA-256 of everything sent, with
  ``remaining_bytes`` 0; every message carries the storage ``version``. The copy is made
  consistent and off the loop: the open batch is committed under the backend lock, then
  the committed database is copied through a read connection of its own in a worker
  thread (one SQLite read transaction, begun under the lock: one point in the history,
  unaffected by a snapshot install that swaps the file later) while apply goes on.
  The copy lives in ``member/snapshot-rpc/`` only while it streams (removed on the way
  out, whether the client read it all or went away; leftovers of a crash are removed at
  start by ``clean``). At most ``MAX_STREAMS`` run at once per member (each holds a
  copy on disk); more wait for a slot.
- ``hash_kv``: etcd's HashKV at a revision (0: current), refused with etcd's errors
  below the compacted or above the current revision; computed through a read connection
  of its own (one read transaction, begun after a commit under the backend lock) a page
  of rows at a time on the loop, so a big keyspace never stalls it; ``hash_all``, etcd's
  Hash, the same way over every row.

The aetcd protobufs predate etcd 3.6's ``SnapshotResponse.version`` and
``HashKVResponse.hash_revision`` (both field 4): they are appended as unknown fields,
which protobuf keeps and serialises, so etcd 3.6 clients see them.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.storage import hashkv
from raftkv.storage.backend import Backend
from raftkv.storage.errors import CompactedError

if TYPE_CHECKING:
    from raftkv.server.raftserver import RaftServer

SEND_CHUNK = 32 * 1024  # etcd's snapshotSendBufferSize
READ_CHUNK = 1 << 20
STORAGE_VERSION = "3.6.0"  # the storage version etcd 3.6 puts in SnapshotResponse
COPY_DIR = "snapshot-rpc"
MAX_STREAMS = 2  # Snapshot streams served at once by one member

M = TypeVar("M", bound=Any)


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def with_field(msg: M, number: int, value: int | str) -> M:
    """``msg`` plus a field its generated class does not know (kept as unknown)."""
    if isinstance(value, int):
        extra = _varint(number << 3) + _varint(value)
    else:
        raw = value.encode()
        extra = _varint(number << 3 | 2) + _varint(len(raw)) + raw
    out: M = type(msg).FromString(msg.SerializeToString() + extra)
    return out


def clean(member_dir: Path) -> None:
    shutil.rmtree(member_dir / COPY_DIR, ignore_errors=True)


async def _copy(s: RaftServer) -> Path:
    d = s.member_dir / COPY_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{time.time_ns()}.db"
    try:
        async with s.backend_lock:  # an install swaps the database only under the lock
            await asyncio.to_thread(s.backend.commit_for_snapshot)
            backend = s.backend
            reader = backend.open_reader()  # the copy's point in the history, fixed now
        await asyncio.to_thread(backend.copy_committed_to, path, reader)
    except BaseException:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".tmp").unlink(missing_ok=True)
        raise
    return path


def _response(s: RaftServer, remaining: int, blob: bytes, rev: int) -> rpc_pb2.SnapshotResponse:
    resp = rpc_pb2.SnapshotResponse(remaining_bytes=remaining, blob=blob)
    resp.header.CopyFrom(s.header(rev))
    return with_field(resp, 4, STORAGE_VERSION)


async def snapshot_stream(s: RaftServer) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
    async with s.snapshot_streams:
        async for resp in _stream(s):
            yield resp


async def _stream(s: RaftServer) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
    try:
        path = await _copy(s)
    except OSError as exc:  # no room for the copy, say: the client's error, not ours
        raise errors.EtcdError(f"etcdserver: cannot copy the database: {exc}") from None
    rev = s.backend.current_revision()
    try:
        total = path.stat().st_size
        h = hashlib.sha256()
        sent = 0
        with open(path, "rb") as f:
            while sent < total:
                block = await asyncio.to_thread(f.read, READ_CHUNK)
                if not block:
                    raise errors.EtcdError("etcdserver: snapshot copy shrank while sent")
                for i in range(0, len(block), SEND_CHUNK):
                    blob = block[i:i + SEND_CHUNK]
                    sent += len(blob)
                    h.update(blob)
                    yield _response(s, total - sent, blob, rev)
        yield _response(s, 0, h.digest(), rev)
    finally:
        path.unlink(missing_ok=True)


async def _stepped(steps: Iterator[int]) -> int:
    """Run a hash a step at a time on the loop, yielding between steps: a CPU-bound hash
    in a worker thread would hold the GIL against the loop's timers and I/O."""
    for h in steps:  # noqa: B007 - the last value is the hash
        await asyncio.sleep(0)
    return h


async def hash_kv(s: RaftServer, revision: int) -> rpc_pb2.HashKVResponse:
    current = s.backend.current_revision()
    if revision > current:
        raise errors.FutureRev()
    if 0 < revision < s.backend.compacted_revision():
        raise errors.Compacted()
    rev = revision or current
    async with s.backend_lock:
        await asyncio.to_thread(s.backend.force_commit)
        reader = s.backend.open_reader()
    try:
        compacted = Backend.reader_compacted(reader, rev)
        h = await _stepped(hashkv.kv_steps(reader, rev, compacted))
    except CompactedError:
        raise errors.Compacted() from None
    finally:
        reader.close()
    resp = rpc_pb2.HashKVResponse(hash=h, compact_revision=compacted)
    resp.header.CopyFrom(s.header(s.backend.current_revision()))
    return with_field(resp, 4, rev)


async def hash_all(s: RaftServer) -> rpc_pb2.HashResponse:
    async with s.backend_lock:
        await asyncio.to_thread(s.backend.force_commit)
        reader = s.backend.open_reader()
    try:
        h = await _stepped(hashkv.all_steps(reader))
    finally:
        reader.close()
    resp = rpc_pb2.HashResponse(hash=h)
    resp.header.CopyFrom(s.header(s.backend.current_revision()))
    return resp
