"""The backend: etcd's revisioned keyspace and meta in one SQLite database.

Schema: ``kv`` holds one row per (key, main revision, sub revision) with the value,
create revision, version, lease and a tombstone flag; ``state`` holds the consistent
index (the last Raft index applied), the current and the compacted revision; ``meta``
holds named blobs (member id, cluster id, ...).

Invariants:
- One ``WriteTxn`` that writes is one main revision (current + 1); its operations take
  sub revisions 0, 1, ... in order. A WriteTxn that wrote must call ``end(index)``;
  leaving it without ``end`` rolls it back and raises.
- The ``state`` rows (consistent index, current and compacted revision, pending
  compaction) change in memory as each WriteTxn or compaction succeeds and are written
  once per batch, by ``force_commit`` just before its COMMIT, so they land in the same
  SQLite transaction as the data they describe: no committed state holds data without
  its index or the reverse. A rolled-back WriteTxn or compaction leaves them untouched.
- Writes join a batch SQLite transaction committed by count (``batch_limit``) or age
  (``batch_interval``, checked by ``maybe_commit``) or ``force_commit``; each commit is
  timed into ``etcd_disk_backend_commit_duration_seconds``. Reads use the same
  connection, so they see every applied write before it is committed. A crash loses
  the uncommitted batch as a whole; the WAL replays it (entries above the index).
- Every WriteTxn that wrote leaves its changes (``Change``: the row written and the key's
  state at the revision before, ``prev``) in ``changes_made`` in write order, for the watch
  hub; ``history`` reads the same changes back for a revision interval (index ``kv_rev``).
- ``journal_mode=WAL`` with ``synchronous=FULL``: a returned commit is durable.
- The latest-row cache holds, for recently written keys, what ``_latest`` would read
  (the live KeyValue, or None for a deleted key). A WriteTxn reads its own writes from
  its own map and adds them to the cache only when it leaves without an error; nothing
  else changes a key's newest row (compaction removes superseded rows and tombstones
  only), and ``load_history`` and a dropped batch clear it. It is bounded by bytes and
  emptied when full.
- Compaction at rev keeps, per key, the newest row at or below rev unless it is a
  tombstone; reads below the compacted revision raise ``CompactedError`` (as etcd,
  a read at exactly the compacted revision is still served).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from raftkv import failpoints
from raftkv.storage import hashkv
from raftkv.storage.errors import CompactedError, FutureRevError, StorageError
from raftkv.storage.metrics import BACKEND_COMMIT_SECONDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL, rev INTEGER NOT NULL, sub INTEGER NOT NULL,
    value BLOB NOT NULL, create_rev INTEGER NOT NULL, version INTEGER NOT NULL,
    lease INTEGER NOT NULL, tombstone INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS kv_key_rev ON kv (key, rev, sub);
CREATE INDEX IF NOT EXISTS kv_rev ON kv (rev, sub);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
_REV_SHIFT = 1 << 32  # rev * _REV_SHIFT + sub orders (rev, sub); subs stay below 2**32
_COLS = "key, value, create_rev, rev, version, lease"
LATEST_CACHE_BYTES = 4 << 20  # keys + values the latest-row cache may hold


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class Change:
    """One row a write added: a put's new KeyValue or a delete's tombstone (``deleted``:
    then ``kv`` holds only key and mod revision, as etcd's delete event), and the key's
    live KeyValue at the revision before (None: absent, or unknown after a compaction)."""

    kv: KeyValue
    deleted: bool
    prev: KeyValue | None


def _kv(row: tuple[bytes, bytes, int, int, int, int]) -> KeyValue:
    return KeyValue(bytes(row[0]), bytes(row[1]), row[2], row[3], row[4], row[5])


def _where(key: bytes, range_end: bytes | None) -> tuple[str, list[bytes]]:
    """etcd's range semantics: single key, ``b"\\0"`` = every key >= key, else [key, end)."""
    if not range_end:
        return "key = ?", [key]
    if range_end == b"\0":
        return "key >= ?", [key]
    return "key >= ? AND key < ?", [key, range_end]


class WriteTxn:
    """One etcd main revision; use as a context manager from ``Backend.write_txn``."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._sub = 0
        self._ended = False
        self.rev = backend.current_revision() + 1
        self.changes_made: list[Change] = []
        self._latest: dict[bytes, KeyValue | None] = {}  # keys this txn wrote, as now

    @property
    def changes(self) -> int:
        return self._sub

    def __enter__(self) -> WriteTxn:
        self._b._begin()
        self._b._conn.execute("SAVEPOINT wtxn")
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self._b._conn
        if t is None and self._sub and not self._ended:
            conn.execute("ROLLBACK TO wtxn")
            conn.execute("RELEASE wtxn")
            raise StorageError("a WriteTxn that wrote was left without end(index); "
                               "rolled back")
        if t is not None:
            conn.execute("ROLLBACK TO wtxn")
            conn.execute("RELEASE wtxn")
            return
        conn.execute("RELEASE wtxn")
        b = self._b
        if self._sub:
            b._current_rev = self.rev
        if self._ended:
            b._ci = self._ci
            b._set_state(consistent_index=self._ci, current_rev=b._current_rev)
        for key, kv in self._latest.items():
            b._cache_latest(key, kv)
        b._pending += 1
        if b._pending >= b.batch_limit:
            b.force_commit()

    def _insert(self, key: bytes, value: bytes, create: int, version: int, lease: int,
                tomb: int) -> None:
        self._b._conn.execute(
            "INSERT INTO kv (key, rev, sub, value, create_rev, version, lease, tombstone)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, self.rev, self._sub, value, create, version, lease, tomb))
        self._sub += 1

    def _prev(self, kv: KeyValue | None, key: bytes) -> KeyValue | None:
        """The key's live state at rev - 1 (``kv``: the latest, maybe written by us)."""
        if kv is None or kv.mod_revision < self.rev:
            return kv
        got, _ = self._b._range_at(key, None, self.rev - 1)
        return got[0] if got else None

    def put(self, key: bytes, value: bytes, lease: int = 0) -> KeyValue | None:
        """Write key at this revision; returns the previous live KeyValue, if any."""
        if self._ended:
            raise StorageError("WriteTxn already ended")
        prev = self._latest[key] if key in self._latest else self._b._latest(key)
        if prev is None:
            new = KeyValue(key, value, self.rev, self.rev, 1, lease)
        else:
            new = KeyValue(key, value, prev.create_revision, self.rev, prev.version + 1, lease)
        self._insert(key, value, new.create_revision, new.version, lease, 0)
        self._latest[key] = new
        self.changes_made.append(Change(new, False, self._prev(prev, key)))
        return prev

    def delete_range(self, key: bytes, range_end: bytes | None = None) -> list[KeyValue]:
        """Tombstone every live key in the range; returns what was deleted."""
        if self._ended:
            raise StorageError("WriteTxn already ended")
        deleted, _ = self._b._range_at(key, range_end, self.rev)  # sees this txn's puts
        for kv in deleted:
            self._insert(kv.key, b"", 0, 0, 0, 1)
            self._latest[kv.key] = None
            self.changes_made.append(
                Change(KeyValue(kv.key, b"", 0, self.rev, 0, 0), True, self._prev(kv, kv.key)))
        return deleted

    def range(self, key: bytes, range_end: bytes | None = None,
              limit: int = 0) -> tuple[list[KeyValue], int]:
        """Live kvs as this transaction sees them, its own writes included."""
        return self._b._range_at(key, range_end, self.rev, limit)

    def end(self, consistent_index: int) -> None:
        """Record the Raft index this transaction applies; it reaches the state rows of
        the batch, and the backend, when the transaction leaves without an error."""
        if self._ended:
            raise StorageError("WriteTxn already ended")
        self._ci = consistent_index
        self._ended = True


class Backend:
    latest_cache_bytes = LATEST_CACHE_BYTES

    def __init__(self, path: Path, conn: sqlite3.Connection, batch_limit: int,
                 batch_interval: float, initial_revision: int = 0) -> None:
        self.path = Path(path)
        self._conn = conn
        self.batch_limit = batch_limit
        self.batch_interval = batch_interval
        self._in_tx = False
        self._batch_start = 0.0
        self._pending = 0
        self._state: dict[str, int] = {}  # state rows changed in the open batch
        self._cache: dict[bytes, KeyValue | None] = {}  # the latest-row cache
        self._cache_bytes = 0
        st = dict(conn.execute("SELECT name, value FROM state").fetchall())
        self._ci: int = st.get("consistent_index", 0)
        # An empty etcd store is at revision 1 (the server opens with initial_revision=1).
        self._current_rev: int = st.get("current_rev", initial_revision)
        self._compacted_rev: int = st.get("compacted_rev", 0)
        # a compaction recorded by apply whose rows are still being deleted (compact_step)
        self._compact_pending: int = st.get("compact_pending", 0)
        self._compact_after: bytes | None = None

    @classmethod
    def open(cls, path: Path, batch_limit: int = 10000, batch_interval: float = 0.1,
             initial_revision: int = 0) -> Backend:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StorageError(f"backend {path}: cannot enable SQLite WAL mode ({mode})")
        conn.execute("PRAGMA synchronous=FULL")
        # room for a batch's dirty pages (a compaction page deletes many rows): spilling
        # them to the -wal file inside a statement would do I/O on the caller's thread
        conn.execute("PRAGMA cache_size=-32768")
        conn.executescript(_SCHEMA)
        return cls(path, conn, batch_limit, batch_interval, initial_revision)

    # --- transactions ----------------------------------------------------------------

    def _begin(self) -> None:
        if not self._in_tx:
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            self._batch_start = time.monotonic()

    def write_txn(self) -> WriteTxn:
        return WriteTxn(self)

    def _set_state(self, **values: int) -> None:
        """Change state rows in the open batch; ``force_commit`` writes them."""
        self._begin()
        self._state.update(values)

    def commit_due(self) -> bool:
        """Whether ``maybe_commit`` would commit now (callers that commit in a worker)."""
        return self._in_tx and (self._pending >= self.batch_limit
                                or time.monotonic() - self._batch_start >= self.batch_interval)

    def maybe_commit(self) -> bool:
        """Commit if the batch is full or old enough; True if it committed."""
        if self._in_tx and (self._pending >= self.batch_limit
                            or time.monotonic() - self._batch_start >= self.batch_interval):
            self.force_commit()
            return True
        return False

    def force_commit(self) -> None:
        """Commit the open batch (if any); durable when this returns."""
        if not self._in_tx:
            return
        failpoints.hit("backendBeforeCommit")
        start = time.perf_counter()
        if self._state:
            self._conn.executemany(
                "INSERT INTO state (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                list(self._state.items()))
            self._state.clear()
        self._conn.execute("COMMIT")
        BACKEND_COMMIT_SECONDS.observe(time.perf_counter() - start)
        self._in_tx = False
        self._pending = 0
        failpoints.hit("backendAfterCommit")

    # --- reads -----------------------------------------------------------------------

    def _latest(self, key: bytes) -> KeyValue | None:
        """The key's live KeyValue at the current revision (None: absent or deleted)."""
        try:
            return self._cache[key]
        except KeyError:
            pass
        row = self._conn.execute(
            f"SELECT {_COLS}, tombstone FROM kv WHERE key = ? ORDER BY rev DESC, sub DESC "
            "LIMIT 1", (key,)).fetchone()
        return None if row is None or row[6] else _kv(row)

    def _cache_latest(self, key: bytes, kv: KeyValue | None) -> None:
        self._cache_bytes += len(key) + (len(kv.value) if kv is not None else 0)
        if self._cache_bytes > self.latest_cache_bytes:
            self._cache.clear()
            self._cache_bytes = len(key) + (len(kv.value) if kv is not None else 0)
        self._cache[key] = kv

    def _check_rev(self, rev: int) -> int:
        if rev > self._current_rev:
            raise FutureRevError(f"revision {rev} is newer than the current revision "
                                 f"{self._current_rev}")
        if 0 < rev < self._compacted_rev:
            raise CompactedError(f"revision {rev} has been compacted (compacted revision "
                                 f"{self._compacted_rev})")
        return rev if rev > 0 else self._current_rev  # <= 0: current, as etcd

    def range(self, key: bytes, range_end: bytes | None = None, rev: int = 0,
              limit: int = 0) -> tuple[list[KeyValue], int]:
        """Live kvs at ``rev`` (0 = current) sorted by key, and their count ignoring limit."""
        return self._range_at(key, range_end, self._check_rev(rev), limit)

    def _range_at(self, key: bytes, range_end: bytes | None, at: int,
                  limit: int = 0) -> tuple[list[KeyValue], int]:
        where, args = _where(key, range_end)
        # a bare column beside MAX() comes from the row holding the maximum (SQLite)
        sql = (f"SELECT {_COLS} FROM (SELECT {_COLS}, tombstone, "
               f"MAX(rev * {_REV_SHIFT} + sub) FROM kv WHERE {where} AND rev <= ? "
               "GROUP BY key) WHERE tombstone = 0 ORDER BY key")
        params: list[object] = [*args, at]
        rows = self._conn.execute(sql + (" LIMIT ?" if limit else ""),
                                  [*params, limit] if limit else params).fetchall()
        kvs = [_kv(r) for r in rows]
        if limit and len(kvs) == limit:
            count = self._conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0]
        else:
            count = len(kvs)
        return kvs, count

    def range_page(self, key: bytes, range_end: bytes | None, at: int,
                   after: bytes | None, page: int) -> tuple[list[KeyValue], bytes | None]:
        """One page of a range at revision ``at`` (already checked): live kvs of at most
        ``page`` keys strictly after ``after``, and the key to continue after (None: the
        range is done). Pages read at one revision form a consistent read as long as no
        compaction above ``at`` runs in between (compact_step; callers check)."""
        if after is None:
            where, args = _where(key, range_end)
            params: list[object] = list(args)
        elif not range_end:
            return [], None  # a single key: one page holds it
        else:
            # one lower bound only, so SQLite seeks to it instead of scanning from ``key``
            where, params = "key > ?", [after]
            if range_end != b"\0":
                where += " AND key < ?"
                params.append(range_end)
        rows = self._conn.execute(
            f"SELECT {_COLS}, tombstone, MAX(rev * {_REV_SHIFT} + sub) FROM kv "
            f"WHERE {where} AND rev <= ? GROUP BY key ORDER BY key LIMIT ?",
            [*params, at, page]).fetchall()
        kvs = [_kv(r[:6]) for r in rows if not r[6]]
        last = bytes(rows[-1][0]) if len(rows) == page else None
        return kvs, last

    def history(self, key: bytes, range_end: bytes | None, lo: int, hi: int,
                limit: int, with_prev: bool = False) -> tuple[list[Change], int]:
        """The changes to keys in the range with revision in [lo, hi], in (rev, sub)
        order, tombstones included, each with the key's state at the revision before if
        ``with_prev`` (else None), and the revision to continue from (hi + 1: all read).
        At most ``limit`` rows, but never part of a revision: the revision the limit cuts
        is left for the next call, unless it is the first, which is then read whole.

        The work is bounded too: a single key is read through its own index rows; a range
        through the revision index, at most ``limit`` revisions per call (so a range no
        recent write touched costs a bounded scan per call, not one of all history)."""
        if range_end:
            hi = min(hi, lo + limit - 1)
            index = "kv_rev"
        else:
            index = "kv_key_rev"
        where, args = _where(key, range_end)
        where = where.replace("key", "kv.key")
        prev = (", p.key, p.value, p.create_rev, p.rev, p.version, p.lease, p.tombstone"
                if with_prev else "")
        join = ("LEFT JOIN kv AS p ON p.id = (SELECT q.id FROM kv AS q WHERE q.key = kv.key "
                "AND q.rev < kv.rev ORDER BY q.rev DESC, q.sub DESC LIMIT 1) "
                if with_prev else "")
        cols = ", ".join(f"kv.{c.strip()}" for c in _COLS.split(","))
        sql = (f"SELECT {cols}, kv.tombstone{prev} FROM kv INDEXED BY {index} {join}"
               f"WHERE kv.rev >= ? AND kv.rev <= ? AND {where} ORDER BY kv.rev, kv.sub")
        rows = self._conn.execute(sql + " LIMIT ?", [lo, hi, *args, limit + 1]).fetchall()
        nxt = hi + 1
        if len(rows) > limit:
            last = rows[-1][3]
            if rows[0][3] == last:
                rows = self._conn.execute(sql, [last, last, *args]).fetchall()
                nxt = last + 1
            else:
                rows = [r for r in rows if r[3] != last]
                nxt = last
        out = []
        for r in rows:
            kv = _kv(r[:6]) if not r[6] else KeyValue(bytes(r[0]), b"", 0, r[3], 0, 0)
            before = _kv(r[7:13]) if with_prev and r[7] is not None and not r[13] else None
            out.append(Change(kv, bool(r[6]), before))
        return out, nxt

    def current_revision(self) -> int:
        return self._current_rev

    def compacted_revision(self) -> int:
        return self._compacted_rev

    def consistent_index(self) -> int:
        return self._ci

    def hash_kv(self, rev: int = 0) -> int:
        """etcd's HashKV at ``rev`` (0: current) on this connection, as kept by the
        compacted revision (``raftkv.storage.hashkv``): equal on members holding the same
        history, whatever their compaction progress."""
        return hashkv.hash_kv(self._conn, rev or self._current_rev, self._compacted_rev)

    def hash_all(self) -> int:
        """etcd's Hash: every stored row (testing only, as etcd says of its own)."""
        return hashkv.hash_all(self._conn)

    def open_reader(self) -> sqlite3.Connection:
        """A read connection of its own, inside a read transaction on the committed
        database: one fixed point of the history that stays valid even if the database
        is replaced afterwards (a snapshot install: the open files stay the old ones).
        Open it where nothing swaps the database meanwhile (under the backend lock);
        then use and close it in any one thread, while the writer goes on."""
        src = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                              check_same_thread=False)
        try:
            src.execute("BEGIN")
            src.execute("SELECT COUNT(*) FROM state").fetchone()  # the read starts here
        except BaseException:
            src.close()
            raise
        return src

    @staticmethod
    def reader_compacted(reader: sqlite3.Connection, rev: int) -> int:
        """The compacted revision an ``open_reader`` connection sees, after refusing a
        ``rev`` below it (CompactedError)."""
        row = reader.execute("SELECT value FROM state WHERE name = 'compacted_rev'").fetchone()
        compacted = int(row[0]) if row else 0
        if 0 < rev < compacted:
            raise CompactedError(f"revision {rev} has been compacted (compacted "
                                 f"revision {compacted})")
        return compacted

    def hash_kv_committed(self, rev: int) -> tuple[int, int]:
        """(HashKV at ``rev``, compacted revision) through a reader opened now, as the
        HashKV RPC reads it (callers that cannot hold the lock: tests)."""
        reader = self.open_reader()
        try:
            compacted = self.reader_compacted(reader, rev)
            return hashkv.hash_kv(reader, rev, compacted), compacted
        finally:
            reader.close()

    def load_history(self, rows: Iterable[tuple[bytes, int, int, bytes, int, int, int, int]],
                     current_rev: int, compacted_rev: int, compact_pending: int) -> None:
        """Restore only, into an empty backend: insert history rows as they are ((key, rev,
        sub, value, create_rev, version, lease, tombstone)) with the revisions they imply,
        in one committed transaction."""
        if self._current_rev > 1 or self._conn.execute("SELECT 1 FROM kv LIMIT 1").fetchone():
            raise StorageError(f"backend {self.path} is not empty; cannot load a history")
        self._begin()
        try:
            self._conn.executemany(
                "INSERT INTO kv (key, rev, sub, value, create_rev, version, lease, tombstone)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._in_tx = False
            self._state.clear()
            raise
        self._cache.clear()
        self._set_state(current_rev=current_rev, compacted_rev=compacted_rev,
                        compact_pending=compact_pending, consistent_index=0)
        self._current_rev, self._compacted_rev = current_rev, compacted_rev
        self._compact_pending, self._ci = compact_pending, 0
        self.force_commit()

    # --- compaction, meta ------------------------------------------------------------

    def compact(self, rev: int, consistent_index: int | None = None) -> None:
        """Drop rows superseded at or below rev (and tombstones there); in the batch,
        with the compacted revision (and the consistent index, if given)."""
        self._check_compact(rev)
        self._begin()
        c = self._conn
        c.execute("SAVEPOINT compact")
        try:
            c.execute("DELETE FROM kv WHERE rev <= :r AND EXISTS (SELECT 1 FROM kv AS n "
                      "WHERE n.key = kv.key AND n.rev <= :r AND "
                      "(n.rev > kv.rev OR (n.rev = kv.rev AND n.sub > kv.sub)))", {"r": rev})
            c.execute("DELETE FROM kv WHERE rev <= ? AND tombstone = 1", (rev,))
        except BaseException:
            c.execute("ROLLBACK TO compact")
            c.execute("RELEASE compact")
            raise
        c.execute("RELEASE compact")
        values = {"compacted_rev": rev}
        if consistent_index is not None:
            values["consistent_index"] = consistent_index
        self._set_state(**values)
        self._compacted_rev = rev
        if consistent_index is not None:
            self._ci = consistent_index
        self._pending += 1

    def _check_compact(self, rev: int) -> None:
        if rev <= self._compacted_rev:
            raise CompactedError(f"revision {rev} has been compacted (compacted revision "
                                 f"{self._compacted_rev})")
        if rev > self._current_rev:
            raise FutureRevError(f"cannot compact at {rev}: current revision is "
                                 f"{self._current_rev}")

    def schedule_compact(self, rev: int) -> None:
        """Record a compaction at ``rev`` in the open batch (reads below it are refused from
        now on); its rows are deleted by ``compact_step`` a page of keys at a time, so a
        compaction of many revisions never holds the caller for long. Deleting rows
        superseded at or below ``rev`` does not depend on later writes, so members that
        interleave the steps differently end with the same rows."""
        self._check_compact(rev)
        self._set_state(compacted_rev=rev, compact_pending=rev)
        self._compacted_rev = rev
        self._compact_pending = rev
        self._compact_after = None
        self._pending += 1

    def compact_pending(self) -> int:
        """The revision of a compaction whose rows are not all deleted yet (0: none)."""
        return self._compact_pending

    def compact_step(self, page: int = 1000) -> bool:
        """Delete the rows of the scheduled compaction for the next ``page`` keys, in the
        batch; True while more remain."""
        rev = self._compact_pending
        if not rev:
            return False
        after = self._compact_after
        keys = self._conn.execute(
            "SELECT DISTINCT key FROM kv" + (" WHERE key > ?" if after is not None else "")
            + " ORDER BY key LIMIT ?", ([after, page] if after is not None else [page])
        ).fetchall()
        self._begin()
        if keys:
            lo, hi = bytes(keys[0][0]), bytes(keys[-1][0])
            c = self._conn
            c.execute("DELETE FROM kv WHERE key >= :lo AND key <= :hi AND rev <= :r AND "
                      "EXISTS (SELECT 1 FROM kv AS n WHERE n.key = kv.key AND n.rev <= :r "
                      "AND (n.rev > kv.rev OR (n.rev = kv.rev AND n.sub > kv.sub)))",
                      {"r": rev, "lo": lo, "hi": hi})
            c.execute("DELETE FROM kv WHERE key >= ? AND key <= ? AND rev <= ? AND "
                      "tombstone = 1", (lo, hi, rev))
            self._compact_after = hi
        self._pending += 1
        if len(keys) < page:
            self._set_state(compact_pending=0)
            self._compact_pending = 0
            self._compact_after = None
            return False
        return True

    def meta_get(self, name: str) -> bytes | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def meta_put(self, name: str, value: bytes) -> None:
        """Store a named blob in the open batch (commit it with ``force_commit``)."""
        self._begin()
        self._conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                           (name, value))
        self._pending += 1

    # --- size, defragmentation -------------------------------------------------------

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def size(self) -> int:
        """Bytes of the database (its file size once checkpointed)."""
        return self._pragma("page_count") * self._pragma("page_size")

    def size_in_use(self) -> int:
        return (self._pragma("page_count") - self._pragma("freelist_count")) * \
            self._pragma("page_size")

    def defragment(self) -> None:
        self.force_commit()
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- snapshots -------------------------------------------------------------------

    def snapshot_to(self, path: Path) -> str:
        """Commit, then write a consistent copy to ``path`` (synced, atomically
        renamed); returns its SHA-256 hex digest. Callers on the writer's thread must
        use ``commit_for_snapshot`` there and ``copy_committed_to`` in a worker."""
        self.force_commit()
        return self.copy_committed_to(path)

    def commit_for_snapshot(self) -> None:
        self.force_commit()

    def copy_committed_to(self, path: Path, reader: sqlite3.Connection | None = None) -> str:
        """Copy the committed database to ``path`` through a read connection of its own
        (``reader`` from ``open_reader``, closed here; by default one opened now), so it
        may run in a worker thread while the writer goes on (SQLite WAL mode: the copy is
        one read transaction, a consistent point). Synced, atomically renamed; returns
        the SHA-256 hex digest."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        src = reader if reader is not None else self.open_reader()
        try:
            dest = sqlite3.connect(tmp)
            try:
                src.backup(dest)
            finally:
                dest.close()
        finally:
            src.close()
        digest = _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return digest

    @staticmethod
    def read_snapshot_chunks(path: Path, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    @staticmethod
    def install(db_path: Path, new_db_path: Path, expected_sha256: str | None = None,
                batch_limit: int = 10000, batch_interval: float = 0.1,
                initial_revision: int = 0) -> Backend:
        """Atomically replace the (closed) database at db_path with new_db_path, reopen.

        The old Backend must be closed first; a leftover ``-wal`` file would otherwise
        be replayed onto the new database."""
        db_path, new_db_path = Path(db_path), Path(new_db_path)
        wal = db_path.with_name(db_path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StorageError(f"backend {db_path} is still open (its -wal file exists); "
                               "close it before installing a snapshot")
        digest = _fsync_file(new_db_path)
        if expected_sha256 is not None and digest != expected_sha256:
            raise StorageError(f"snapshot database {new_db_path} has SHA-256 {digest}, "
                               f"expected {expected_sha256}")
        check = sqlite3.connect(new_db_path)
        try:
            ok = check.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            check.close()
        if ok != "ok":
            raise StorageError(f"snapshot database {new_db_path} fails quick_check: {ok}")
        wal.unlink(missing_ok=True)
        db_path.with_name(db_path.name + "-shm").unlink(missing_ok=True)
        failpoints.hit("backendBeforeInstallRename")
        os.replace(new_db_path, db_path)
        _fsync_dir(db_path.parent)
        return Backend.open(db_path, batch_limit, batch_interval, initial_revision)

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Commit, checkpoint and close."""
        self.force_commit()
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def close_without_commit(self) -> None:
        """Drop the open batch as a crash would (tests, and failing nodes)."""
        self._conn.close()
        self._in_tx = False
        self._state.clear()
        self._cache.clear()


def _fsync_file(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
