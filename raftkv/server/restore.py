"""``raftkv snapshot restore``: a new member's data directory from a snapshot file.

As etcdutl's restore: the file's hash is checked, the keyspace (every revision kept,
leases, the compacted revision) is kept, and the membership is new: members and the
cluster ID come from ``--initial-cluster``/``--initial-cluster-token`` exactly as a new
cluster with those flags computes them, never from the snapshot. The data directory is
written by the member's own recovery code (``recovery.recover`` with bootstrap), so the
WAL holds the new member list as committed configuration changes above the database's
consistent index (reset to 0) and the member started on it applies them first.

Invariants: nothing is written at ``--data-dir`` unless everything checks out: the work
is done in a sibling temporary directory renamed into place at the end (removed on any
failure); a ``--data-dir`` that exists and is not empty is refused, as etcdutl's. Replicated
alarms (CORRUPT) are dropped: they describe the old cluster's members. An etcd (bbolt)
snapshot is converted (``raftkv.storage.etcdsnap``): keys, revisions, compaction, leases.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from raftkv.mvcc.alarms import ALARMS_META
from raftkv.server.apply import MEMBERS_META
from raftkv.server.config import ServerConfig
from raftkv.server.recovery import recover
from raftkv.storage import etcdsnap, snapfile
from raftkv.storage.bbolt import BoltError
from raftkv.storage.errors import StorageError


class RestoreError(StorageError):
    pass


def _reset_membership(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM meta WHERE name IN (?, ?)", (MEMBERS_META, ALARMS_META))
        conn.execute("INSERT INTO state (name, value) VALUES ('consistent_index', 0) "
                     "ON CONFLICT(name) DO UPDATE SET value = 0")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _bump(db: Path, amount: int) -> int:
    """etcdutl's --bump-revision with --mark-compacted: the revision jumps by ``amount``
    and everything below the new revision is compacted (the compaction runs when the
    member starts), so watchers and caches of the old cluster must start over."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM state WHERE name = 'current_rev'").fetchone()
        rev = (int(row[0]) if row else 1) + amount
        conn.executemany("INSERT INTO state (name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                         [("current_rev", rev), ("compacted_rev", rev),
                          ("compact_pending", rev)])
        conn.execute("COMMIT")
        return rev
    finally:
        conn.close()


def restore(snapshot: Path, cfg: ServerConfig, skip_hash_check: bool = False,
            bump_revision: int = 0) -> None:
    """``bump_revision`` > 0 means etcdutl's ``--bump-revision N --mark-compacted``."""
    cfg.validate()
    data_dir = Path(cfg.data_dir)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreError(f'data-dir "{data_dir}" not empty or could not be read')
    tmp = data_dir.with_name(data_dir.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        snap_dir = tmp / "member" / "snap"
        snap_dir.mkdir(parents=True)
        if snapfile.kind(snapshot) == "bbolt":  # an etcd snapshot: migrate its keyspace
            size = snapfile.checked_size(snapshot, skip_hash_check)
            try:
                etcdsnap.convert(snapshot, size, snap_dir / "db")
            except BoltError as exc:
                raise snapfile.SnapshotFileError(str(exc)) from None
        else:
            snapfile.extract(snapshot, snap_dir / "db", skip_hash_check)
        _reset_membership(snap_dir / "db")
        if bump_revision > 0:
            _bump(snap_dir / "db", bump_revision)
        rec = recover(cfg, tmp / "member", cfg.member_id, cfg.cluster_id, bootstrap=True)
        rec.backend.close()
        rec.wal.close()
        rec.lock.release()
        os.replace(tmp, data_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
