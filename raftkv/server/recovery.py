"""Recovery and bootstrap: from a data directory to one recovered-state value.

``recover`` takes the data-directory lock, opens (or creates) the WAL, loads the newest
snapshot the WAL has a marker for, rebuilds the in-memory Raft storage, and makes the
backend agree with the snapshot, as etcd's bootstrap and ``recoverSnapshotBackend`` do:

- A snapshot file is used only if the WAL holds its marker (``load_newest_available``):
  a file saved just before a crash, whose marker never made it, is ignored.
- The hard state's commit is raised to the snapshot's index (a snapshot holds only
  committed entries; a crash between the marker and the next hard-state record would
  otherwise leave commit below the snapshot and Raft refuses to start).
- Backend consistent index below the snapshot's index means a crash inside a snapshot
  install (after the WAL marker, before the database swap). The received database is
  kept under ``<term>-<index>.snap.db`` until installed, so it is installed now; if it is
  gone the member refuses to start (``RecoveryError``) instead of serving a database that
  misses entries Raft believes applied.
- Received snapshot databases at or below the recovered snapshot index are deleted.

A brand-new member of a new cluster gets its initial membership as committed
configuration-change entries, identical on every member.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from raftkv.raft import (
    NONE,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Snapshot,
)
from raftkv.raft.codec import encode_conf_change
from raftkv.server.config import ServerConfig
from raftkv.server.membership import Member
from raftkv.server.transport import received_snapshot_path
from raftkv.storage.backend import Backend
from raftkv.storage.lock import DataDirLock
from raftkv.storage.snap import Snapshotter
from raftkv.storage.wal import WAL

log = logging.getLogger("raftkv.server.recovery")

ETCD_FIRST_REVISION = 1  # an empty etcd keyspace is at revision 1; the first write is 2


class RecoveryError(RuntimeError):
    pass


@dataclass
class Recovered:
    """Everything a member needs from its data directory to start its loop."""

    member_id: int
    cluster_id: int
    lock: DataDirLock
    wal: WAL
    storage: MemoryStorage
    snapshotter: Snapshotter
    backend: Backend
    snap_dir: Path
    snapshot_index: int


def open_backend(snap_dir: Path) -> Backend:
    return Backend.open(snap_dir / "db", initial_revision=ETCD_FIRST_REVISION)


def install_backend(snap_dir: Path, received: Path) -> Backend:
    """Swap the (closed) database for a received one; the received file is consumed."""
    return Backend.install(snap_dir / "db", received, initial_revision=ETCD_FIRST_REVISION)


def recover(cfg: ServerConfig, member_dir: Path, member_id: int, cluster_id: int,
            bootstrap: bool) -> Recovered:
    """Open or create a member's state. ``bootstrap``: a fresh WAL of a new cluster gets
    the initial membership entries. ``member_id``/``cluster_id`` are used for a fresh WAL;
    an existing WAL's metadata wins."""
    member_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(member_dir).acquire()
    try:
        return _recover(cfg, member_dir, lock, member_id, cluster_id, bootstrap)
    except BaseException:
        lock.release()
        raise


def _recover(cfg: ServerConfig, member_dir: Path, lock: DataDirLock, member_id: int,
             cluster_id: int, bootstrap: bool) -> Recovered:
    wal_dir = member_dir / "wal"
    snap_dir = member_dir / "snap"
    snap_dir.mkdir(parents=True, exist_ok=True)
    snapshotter = Snapshotter(snap_dir)
    storage = MemoryStorage()
    if not WAL.exists(wal_dir):
        meta = f"{member_id:016x}:{cluster_id:016x}".encode()
        wal = WAL.create(wal_dir, meta, segment_size=cfg.wal_segment_bytes)
        if bootstrap:
            _bootstrap(cfg, wal, storage)
    else:
        wal, state = WAL.open(wal_dir, segment_size=cfg.wal_segment_bytes)
        mid, _, cid = state.metadata.decode().partition(":")
        member_id, cluster_id = int(mid, 16), int(cid, 16)
        snap = snapshotter.load_newest_available(state.snapshots)
        if snap is not None and snap.metadata.index >= state.snapshot.index:
            storage.apply_snapshot(snap)
        elif state.snapshot.index:
            storage.apply_snapshot(Snapshot(state.snapshot))
        storage.append(state.entries)
        hs = state.hard_state
        first = storage.snapshot().metadata.index
        if not hs.is_empty() and hs.commit < first:
            hs = replace(hs, commit=first)
        storage.set_hard_state(hs)
    snap_meta = storage.snapshot().metadata
    backend = open_backend(snap_dir)
    if backend.consistent_index() < snap_meta.index:
        kept = received_snapshot_path(snap_dir, snap_meta.term, snap_meta.index)
        if not kept.exists():
            ci = backend.consistent_index()
            backend.close()
            raise RecoveryError(
                f"the database's consistent index {ci} is below the snapshot index "
                f"{snap_meta.index} and the snapshot's database {kept} is not there; "
                "restore this member from a backup or remove and re-add it")
        log.warning("finishing an interrupted snapshot install: database at index %d, "
                    "snapshot at %d", backend.consistent_index(), snap_meta.index)
        backend.close()
        backend = install_backend(snap_dir, kept)
    remove_stale_received(snap_dir, snap_meta.index)
    return Recovered(member_id, cluster_id, lock, wal, storage, snapshotter, backend,
                     snap_dir, snap_meta.index)


def remove_stale_received(snap_dir: Path, upto: int) -> None:
    """Delete received snapshot databases (and their temps) at or below ``upto``."""
    for p in snap_dir.glob("*-*.snap.db"):
        try:
            index = int(p.name.split(".")[0].split("-")[1], 16)
        except (IndexError, ValueError):
            continue
        if index <= upto:
            p.unlink(missing_ok=True)


def _bootstrap(cfg: ServerConfig, wal: WAL, storage: MemoryStorage) -> None:
    """A brand-new cluster: every initial member added by a committed conf change."""
    ents = []
    for i, (mid, (name, urls)) in enumerate(sorted(cfg.initial_members().items())):
        # Identical on every member (Raft's logs must agree byte for byte): client
        # URLs are not known here; each member publishes its own once a leader exists.
        m = Member(mid, name, urls, [])
        cc = ConfChange(ConfChangeType.ADD_NODE, mid, m.to_json())
        ents.append(Entry(1, i + 1, EntryType.CONF_CHANGE, encode_conf_change(cc)))
    hs = HardState(term=1, vote=NONE, commit=len(ents))
    wal.save(hs, ents)
    storage.append(ents)
    storage.set_hard_state(hs)
