"""Durable storage: WAL segments, the SQLite backend, snapshots, the data-dir lock.

Layout of a member's data dir, as etcd's: ``<data-dir>/member/wal/`` (``WAL``),
``<data-dir>/member/snap/`` (``Snapshotter``: Raft snapshot files) and
``<data-dir>/member/snap/db`` (``Backend``). Invariant: this package imports only the
Raft core's types and codec, ``raftkv.failpoints``, the standard library and
prometheus_client.
"""

from pathlib import Path

from raftkv.storage.backend import Backend, KeyValue, WriteTxn
from raftkv.storage.errors import (
    CompactedError,
    DataDirLockedError,
    FutureRevError,
    SnapshotCorruptError,
    StorageError,
    WALCorruptError,
    WALError,
    WALNotFoundError,
    WALSyncError,
)
from raftkv.storage.fs import FS, FaultyFS, OsFS
from raftkv.storage.lock import DataDirLock
from raftkv.storage.metrics import REGISTRY
from raftkv.storage.snap import Snapshotter
from raftkv.storage.wal import WAL, WALState


def member_dirs(data_dir: Path) -> tuple[Path, Path, Path]:
    """(wal dir, snap dir, backend db path) under ``data_dir``, as etcd lays them out."""
    member = Path(data_dir) / "member"
    return member / "wal", member / "snap", member / "snap" / "db"


__all__ = [
    "FS",
    "REGISTRY",
    "WAL",
    "Backend",
    "CompactedError",
    "DataDirLock",
    "DataDirLockedError",
    "FaultyFS",
    "FutureRevError",
    "KeyValue",
    "OsFS",
    "SnapshotCorruptError",
    "Snapshotter",
    "StorageError",
    "WALCorruptError",
    "WALError",
    "WALNotFoundError",
    "WALState",
    "WALSyncError",
    "WriteTxn",
    "member_dirs",
]
