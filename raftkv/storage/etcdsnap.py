"""An etcd (bbolt) snapshot -> a raftkv backend database, so users can migrate from etcd.

Read through :mod:`raftkv.storage.bbolt`. etcd's ``key`` bucket maps a revision (8-byte
big-endian main, ``_``, 8-byte sub, and a ``t`` for a tombstone) to an mvccpb.KeyValue;
each becomes one raftkv history row with the same revision, create revision, version,
lease and value (a tombstone: an empty row flagged as one), so reads at any retained
revision answer as etcd did. ``meta``'s ``finishedCompactRev``/``scheduledCompactRev``
give the compacted revision (a compaction scheduled but unfinished is finished by raftkv's
compact loop); the current revision is the newest row's, or the compacted revision if
that is higher, as etcd's mvcc restore computes it. ``lease`` gives the leases' granted
TTLs. Membership, alarms and auth are not carried over (restore writes a new membership;
raftkv has no auth).

Invariant: a key bucket entry that does not parse raises ``SnapshotFileError`` (nothing
half-converted is installed: the caller writes into a temporary file).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

from aetcd.rpc import kv_pb2
from google.protobuf.message import DecodeError

from raftkv.storage.backend import Backend
from raftkv.storage.bbolt import BoltFile
from raftkv.storage.snapfile import SnapshotFileError

_REV = struct.Struct(">Q1sQ")
LEGACY_LEASES_META = "leases"  # raftkv.mvcc.lease reads (and splits) this whole-table blob


def _varints(buf: bytes) -> dict[int, int]:
    """The varint fields of a small protobuf message (leasepb.Lease)."""
    out: dict[int, int] = {}
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        if tag & 7 != 0:
            raise SnapshotFileError("a lease record holds a non-varint field")
        out[tag >> 3], i = _varint(buf, i)
    return out


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise SnapshotFileError("a truncated varint in a lease record")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _rows(bolt: BoltFile, newest: list[int]) -> Iterator[
        tuple[bytes, int, int, bytes, int, int, int, int]]:
    for k, v in bolt.items(b"key"):
        if len(k) not in (17, 18) or k[8:9] != b"_" or (len(k) == 18 and k[17:] != b"t"):
            raise SnapshotFileError(f"an etcd key-bucket entry with a malformed revision "
                                    f"{k.hex()}")
        main, _, sub = _REV.unpack_from(k)
        if main >= 1 << 63 or sub >= 1 << 32:
            raise SnapshotFileError(f"an etcd key-bucket entry with an impossible revision "
                                    f"{main}/{sub}")
        kv = kv_pb2.KeyValue()
        try:
            kv.ParseFromString(v)
        except DecodeError as exc:
            raise SnapshotFileError(f"revision {main}: not a KeyValue: {exc}") from None
        newest[0] = max(newest[0], main)
        if len(k) == 18:
            yield kv.key, main, sub, b"", 0, 0, 0, 1
        else:
            yield (kv.key, main, sub, kv.value, kv.create_revision, kv.version, kv.lease, 0)


def _meta_int(bolt: BoltFile, name: bytes) -> int:
    for k, v in bolt.items(b"meta"):
        if k == name and len(v) >= 8:
            return int(struct.unpack(">q", v[:8])[0])
    return 0


def convert(snapshot: Path, db_size: int, dest: Path) -> int:
    """Write a raftkv backend at ``dest`` from the etcd snapshot; returns its revision."""
    with BoltFile(snapshot, db_size) as bolt:
        finished = _meta_int(bolt, b"finishedCompactRev")
        scheduled = _meta_int(bolt, b"scheduledCompactRev")
        leases = {}
        for _, v in bolt.items(b"lease"):
            f = _varints(v)
            if f.get(1):
                leases[str(f[1])] = f.get(2, 0)
        newest = [1]
        b = Backend.open(dest, initial_revision=1)
        try:
            rows = list(_rows(bolt, newest))
            compacted = max(finished, scheduled, 0)
            current = max(newest[0], compacted, 1)
            try:
                b.load_history(rows, current, compacted,
                               scheduled if scheduled > finished else 0)
            except (sqlite3.IntegrityError, OverflowError) as exc:  # not a sane snapshot
                raise SnapshotFileError(f"{snapshot}: {exc}") from None
            if leases:
                b.meta_put(LEGACY_LEASES_META, json.dumps(leases, sort_keys=True).encode())
                b.force_commit()
        finally:
            b.close()
    return current
