"""etcd's HashKV and Hash over a backend's SQLite connection.

``hash_kv(conn, rev, compacted)`` is a CRC32 over the rows a member keeps *logically* at
``rev`` given its compacted revision, in (key, rev, sub) order, as etcd's HashKV hashes
the revisions its key index keeps: every row in (compacted, rev], plus, at or below the
compacted revision, each key's newest row unless it is a tombstone. Rows a scheduled
compaction has not deleted yet (``compact_step`` runs a page at a time, differently
interleaved on each member) are left out exactly as if they were gone, so members that
applied the same entries agree whatever their compaction progress.

``hash_all(conn)`` is etcd's Hash: every stored kv row, whatever its revision (it
differs between members whose compactions progressed differently; etcd documents Hash
as for testing only).

``kv_steps``/``all_steps`` are the same hashes a step at a time (the running CRC after each
``STEP`` rows), for callers that interleave them with other work on an event loop: a CPU-
bound hash in a worker thread holds the GIL against the loop's thread (with one, CI's
machine read 0.08-0.1 s of loop lag during a HashKV).

Invariant: the encoding of a row is fixed-width integers and length-prefixed bytes, never
``repr``, so the hash does not depend on Python's formatting.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections import deque
from collections.abc import Iterator

STEP = 256  # rows per step: about a millisecond of SQLite and CRC work (1024: the
# batch's tuples set off collections that made some steps 10-25 ms)
_INTS = struct.Struct(">QQQQQB")  # rev, sub, create_rev, version, lease, tombstone
_LEN = struct.Struct(">I")

_KEPT = (
    "SELECT key, rev, sub, value, create_rev, version, lease, tombstone FROM kv AS k "
    "WHERE rev <= :at AND (rev > :c OR (tombstone = 0 AND NOT EXISTS ("
    "SELECT 1 FROM kv AS n WHERE n.key = k.key AND n.rev <= :c AND "
    "(n.rev > k.rev OR (n.rev = k.rev AND n.sub > k.sub))))) ORDER BY key, rev, sub")
_ALL = ("SELECT key, rev, sub, value, create_rev, version, lease, tombstone FROM kv "
        "ORDER BY key, rev, sub")


def _row_bytes(r: tuple[bytes, int, int, bytes, int, int, int, int]) -> bytes:
    key, value = bytes(r[0]), bytes(r[3])
    return b"".join((_LEN.pack(len(key)), key, _LEN.pack(len(value)), value,
                     _INTS.pack(r[1], r[2], r[4], r[5], r[6] & (2**64 - 1), r[7])))


def _steps(cur: sqlite3.Cursor, rows: int) -> Iterator[int]:
    h = 0
    while batch := cur.fetchmany(rows):
        for r in batch:
            h = zlib.crc32(_row_bytes(r), h)
        yield h
    yield h  # the hash, also of no rows


def kv_steps(conn: sqlite3.Connection, rev: int, compacted: int,
             rows: int = STEP) -> Iterator[int]:
    """``hash_kv`` a step at a time: the running hash after each ``rows`` rows; the
    last value is the hash."""
    return _steps(conn.execute(_KEPT, {"at": rev, "c": compacted}), rows)


def all_steps(conn: sqlite3.Connection, rows: int = STEP) -> Iterator[int]:
    """``hash_all`` a step at a time, as ``kv_steps``."""
    return _steps(conn.execute(_ALL), rows)


def last(steps: Iterator[int]) -> int:
    return deque(steps, maxlen=1)[0]


def hash_kv(conn: sqlite3.Connection, rev: int, compacted: int) -> int:
    """The hash of the keyspace at ``rev`` as kept by a compaction at ``compacted``."""
    return last(kv_steps(conn, rev, compacted, 4096))


def hash_all(conn: sqlite3.Connection) -> int:
    return last(all_steps(conn, 4096))
