"""Snapshot files as ``etcdctl snapshot save`` writes them from a raftkv member.

A file is the member's SQLite database followed by the 32-byte SHA-256 of that database
(etcd's framing: the hash is present when ``size % 512 == 32``; SQLite pages are multiples
of 512 bytes, so a bare database never looks hashed).

Invariants: ``extract`` never writes its destination unless the hash checks out (or the
caller skipped the check) and the database passes ``PRAGMA quick_check`` and has the
backend's tables; otherwise it raises ``SnapshotFileError`` and leaves nothing behind.
A file that is an etcd (bbolt) snapshot is named as such in the error (``kind`` tells
the two apart; ``raftkv.storage.etcdsnap`` converts an etcd one).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from raftkv.storage import hashkv
from raftkv.storage.errors import StorageError

HASH_SIZE = 32
_BBOLT_MAGIC = 0xED0CDAED
_SQLITE_MAGIC = b"SQLite format 3\0"


class SnapshotFileError(StorageError):
    """The file is not an intact raftkv snapshot; the message says why."""


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int  # CRC32 over every stored row (etcdutl's hash is over the bbolt buckets)
    revision: int
    total_key: int  # stored rows (every revision of every key), as etcdutl counts entries
    total_size: int  # bytes of the database (without the trailing hash)
    version: str


def _db_size(path: Path, skip_hash_check: bool) -> int:
    """Bytes of database in ``path`` after checking its trailing SHA-256."""
    size = path.stat().st_size
    has_hash = size % 512 == HASH_SIZE
    if not has_hash:
        if skip_hash_check:
            return size
        raise SnapshotFileError(f"snapshot {path} has no SHA-256 at its end (size {size}); "
                                "pass --skip-hash-check to use it anyway")
    db_size = size - HASH_SIZE
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = db_size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise SnapshotFileError(f"snapshot {path} shrank while read")
            h.update(chunk)
            left -= len(chunk)
        want = f.read(HASH_SIZE)
    if not skip_hash_check and h.digest() != want:
        raise SnapshotFileError(f"snapshot {path} is corrupt: its SHA-256 is "
                                f"{h.hexdigest()}, the file says {want.hex()}")
    return db_size


def checked_size(path: Path, skip_hash_check: bool = False) -> int:
    """Bytes of database in ``path``, after checking its trailing SHA-256."""
    return _db_size(Path(path), skip_hash_check)


def kind(path: Path) -> str | None:
    """"sqlite" (a raftkv snapshot), "bbolt" (an etcd one) or None."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if len(head) >= 20 and int.from_bytes(head[16:20], "little") == _BBOLT_MAGIC:
        return "bbolt"
    return None


def _kind_error(path: Path) -> None:
    k = kind(path)
    if k == "sqlite":
        return
    if k == "bbolt":
        raise SnapshotFileError(f"{path} is an etcd (bbolt) snapshot: `raftkv snapshot "
                                "restore` converts it; for its status use etcdutl")
    raise SnapshotFileError(f"{path} is not a raftkv snapshot (no SQLite header)")


def extract(path: Path, dest: Path, skip_hash_check: bool = False) -> int:
    """Check ``path`` and write its database to ``dest`` (synced); returns its size."""
    path, dest = Path(path), Path(dest)
    size = _db_size(path, skip_hash_check)
    _kind_error(path)
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            left = size
            while left:
                chunk = src.read(min(left, 1 << 20))
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        _check_db(tmp, path)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _check_db(db: Path, origin: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise SnapshotFileError(f"snapshot {origin} is not a readable database: {exc}") from None
    if ok != "ok":
        raise SnapshotFileError(f"snapshot {origin} fails SQLite's quick_check: {ok}")
    if not {"kv", "state", "meta"} <= tables:
        raise SnapshotFileError(f"snapshot {origin} is a SQLite database but not a raftkv "
                                "backend (no kv/state/meta tables)")


def status(path: Path, scratch: Path, version: str) -> SnapshotStatus:
    """Check ``path`` and read its figures; ``scratch`` is a file name it may use."""
    size = extract(path, scratch)
    try:
        conn = sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)
        try:
            st = dict(conn.execute("SELECT name, value FROM state").fetchall())
            rows = conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0]
            h = hashkv.hash_all(conn)
        finally:
            conn.close()
    finally:
        scratch.unlink(missing_ok=True)
    return SnapshotStatus(h, int(st.get("current_rev", 1)), int(rows), size, version)
