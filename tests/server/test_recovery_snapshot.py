"""Recovery after a crash inside a snapshot install, without processes or a loop: the WAL
holds the snapshot's marker but the database is older. With the received database kept,
recovery installs it (etcd's recoverSnapshotBackend) and raises the hard state's commit
to the snapshot; without it the member refuses to start rather than serve a database
missing entries Raft believes applied. An orphan .snap file without a WAL marker is
ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.raft import ConfState, Snapshot, SnapshotMetadata
from raftkv.server.config import ServerConfig
from raftkv.server.recovery import Recovered, RecoveryError, recover
from raftkv.server.transport import received_snapshot_path
from raftkv.storage.backend import Backend


def _close(rec: Recovered) -> None:
    rec.backend.close()
    rec.wal.close()
    rec.lock.release()


def _crash_after_marker(tmp_path: Path, cfg: ServerConfig, index: int) -> Path:
    member = tmp_path / "member"
    rec = recover(cfg, member, cfg.member_id, cfg.cluster_id, bootstrap=True)
    meta = SnapshotMetadata(index=index, term=1, conf_state=ConfState(voters=[rec.member_id]))
    rec.snapshotter.save(Snapshot(meta))
    rec.wal.save_snapshot(meta)  # ... and the crash comes before the database swap
    orphan = SnapshotMetadata(index=index + 5, term=1, conf_state=meta.conf_state)
    rec.snapshotter.save(Snapshot(orphan))  # saved, its marker never written
    _close(rec)
    return member


def test_interrupted_install_is_finished_from_the_kept_database(tmp_path: Path) -> None:
    cfg = ServerConfig(data_dir=tmp_path)
    member = _crash_after_marker(tmp_path, cfg, 5)
    kept = received_snapshot_path(member / "snap", 1, 5)
    b = Backend.open(kept, initial_revision=1)
    with b.write_txn() as w:
        w.put(b"from-the-leader", b"v")
        w.end(5)
    b.close()
    for suffix in ("-wal", "-shm"):
        Path(str(kept) + suffix).unlink(missing_ok=True)
    rec = recover(cfg, member, cfg.member_id, cfg.cluster_id, bootstrap=True)
    try:
        assert rec.snapshot_index == 5  # the orphan at 10 was ignored
        assert rec.backend.consistent_index() == 5
        assert [kv.key for kv in rec.backend.range(b"from-the-leader")[0]] == [
            b"from-the-leader"]
        assert rec.storage.initial_state()[0].commit >= 5
        assert not kept.exists()
    finally:
        _close(rec)


def test_without_the_kept_database_the_member_refuses_to_start(tmp_path: Path) -> None:
    cfg = ServerConfig(data_dir=tmp_path)
    member = _crash_after_marker(tmp_path, cfg, 5)
    with pytest.raises(RecoveryError, match="below the snapshot index 5"):
        recover(cfg, member, cfg.member_id, cfg.cluster_id, bootstrap=True)
    # the lock was released: a fixed data directory can be opened again
    with pytest.raises(RecoveryError):
        recover(cfg, member, cfg.member_id, cfg.cluster_id, bootstrap=True)
