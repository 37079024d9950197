"""The snapshot file lifecycle of a member: making one, sending one, installing one.

- ``create``: every ``snapshot_count`` applied entries: the backend is committed (so its
  consistent index is at or past the snapshot), the Raft snapshot file saved, its WAL
  marker written, Raft's in-memory log compacted behind it (keeping
  ``catchup_entries``), WAL segments wholly below it released, old files removed.
- ``copy_for_peer``: the database a leader streams with an outgoing snapshot, copied
  through its own read connection in a worker (the loop goes on applying).
- ``install``: a snapshot received from the leader, crash-atomic with
  ``recovery.recover``: .snap file, then WAL marker, then the database swap (in a worker
  thread), then Raft's in-memory storage; the received database keeps its name until
  the swap, so a crash anywhere before it is finished on restart. Failpoints between
  the steps.

Callers hold the backend lock across each (nothing else uses the database meanwhile);
WAL writes are serialised with the Ready loop's through ``wal_lock``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from raftkv import failpoints
from raftkv.raft import ConfState, MemoryStorage, Snapshot
from raftkv.server.recovery import install_backend, remove_stale_received
from raftkv.server.transport import received_snapshot_path
from raftkv.storage.backend import Backend
from raftkv.storage.snap import Snapshotter
from raftkv.storage.wal import WAL

KEEP_SNAP_FILES = 5


class SnapshotLifecycle:
    def __init__(self, snap_dir: Path, snapshotter: Snapshotter, wal: WAL,
                 storage: MemoryStorage, wal_lock: asyncio.Lock, snapshot_index: int,
                 snapshot_count: int, catchup_entries: int) -> None:
        self.snap_dir = snap_dir
        self.snapshotter = snapshotter
        self.wal = wal
        self.storage = storage
        self.wal_lock = wal_lock
        self.index = snapshot_index  # the newest snapshot's index
        self.snapshot_count = snapshot_count
        self.catchup_entries = catchup_entries

    def due(self, applied: int) -> bool:
        return applied - self.index >= self.snapshot_count

    async def create(self, backend: Backend, applied: int, cs: ConfState) -> None:
        await asyncio.to_thread(backend.force_commit)
        snap = self.storage.create_snapshot(applied, cs, b"")
        failpoints.hit("raftBeforeSaveSnap")
        await asyncio.to_thread(self.snapshotter.save, snap)
        async with self.wal_lock:
            self.wal.save_snapshot(snap.metadata)
            failpoints.hit("raftAfterSaveSnap")
            self.index = applied
            compact_to = applied - self.catchup_entries
            if compact_to > self.storage.first_index():
                self.storage.compact(compact_to)
            # The backend is synced past ``applied``: WAL segments wholly below it can go.
            self.wal.release_to(applied)
            failpoints.hit("raftAfterWALRelease")
        self.snapshotter.release(keep=KEEP_SNAP_FILES)

    async def copy_for_peer(self, backend: Backend, to: int) -> Path:
        path = self.snap_dir / f"send-{to:x}-{time.monotonic_ns()}.db"
        backend.commit_for_snapshot()
        await asyncio.to_thread(backend.copy_committed_to, path)
        return path

    async def install(self, snap: Snapshot, backend: Backend) -> Backend:
        """Install a received snapshot; returns the new backend (``backend`` is closed).
        The file work (checksums, quick_check, fsyncs of a whole database) runs in a
        worker; the caller's Ready loop waits, the event loop does not."""
        new = await asyncio.to_thread(self._persist_and_swap, snap, backend)
        self.storage.apply_snapshot(snap)
        self.index = snap.metadata.index
        return new

    def _persist_and_swap(self, snap: Snapshot, backend: Backend) -> Backend:
        meta = snap.metadata
        received = received_snapshot_path(self.snap_dir, meta.term, meta.index)
        if not received.exists():
            raise RuntimeError(f"snapshot {meta.term}/{meta.index} arrived without its "
                               f"backend file {received}")
        failpoints.hit("raftBeforeInstallSnapshot")
        self.snapshotter.save(snap)
        failpoints.hit("raftAfterInstallSnapFile")
        self.wal.save_snapshot(meta)
        failpoints.hit("raftAfterInstallWALMarker")
        backend.close()
        new = install_backend(self.snap_dir, received)
        failpoints.hit("raftAfterInstallBackend")
        remove_stale_received(self.snap_dir, meta.index)
        return new
