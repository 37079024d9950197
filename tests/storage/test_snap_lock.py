"""Snapshot files (atomic save, checksums, fallback, release) and the data-dir lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftkv.raft.types import ConfState, Snapshot, SnapshotMetadata
from raftkv.storage.errors import DataDirLockedError
from raftkv.storage.fs import FaultyFS, OsFS
from raftkv.storage.lock import DataDirLock
from raftkv.storage.snap import Snapshotter, snap_name

D = Path("/data/member/snap")


def snap(index: int, term: int = 1, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMetadata(index, term, ConfState((1, 2, 3), (4,))), data)


def faulty() -> FaultyFS:
    fs = FaultyFS()
    fs.mkdir(D.parent)
    fs.fsync_dir(Path("/"))
    fs.fsync_dir(Path("/data"))
    return fs


def test_save_load_release_on_disk(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "snap", fs=OsFS())
    assert s.load_newest() is None
    for i in (5, 10, 15, 20):
        s.save(snap(i, data=b"d%d" % i))
    assert s.load_newest() == snap(20, data=b"d20")
    s.release(keep=2)
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == [
        snap_name(1, 15), snap_name(1, 20)]
    with pytest.raises(ValueError):
        s.save(Snapshot())


def test_corrupt_newest_falls_back_to_previous() -> None:
    fs = faulty()
    s = Snapshotter(D, fs=fs)
    s.save(snap(10, data=b"old"))
    s.save(snap(20, data=b"new"))
    newest = D / snap_name(1, 20)
    fs.flip_bit(newest, 30)
    assert s.load_newest() == snap(10, data=b"old")
    assert s.broken == [snap_name(1, 20)]
    assert fs.exists(newest)  # kept for inspection


def test_save_survives_power_loss_and_tmp_never_loaded() -> None:
    import random
    for seed in range(20):
        fs = faulty()
        s = Snapshotter(D, fs=fs)
        s.save(snap(7))
        f = fs.open(D / (snap_name(1, 9) + ".tmp"), create=True)  # a crashed save
        f.pwrite(b"partial", 0)
        fs.power_loss(random.Random(seed))
        s2 = Snapshotter(D, fs=fs)
        assert s2.load_newest() == snap(7)


def test_lock_excludes_second_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path / "data") as lock:
        assert lock.held
        with pytest.raises(DataDirLockedError, match="in use by another process"):
            DataDirLock(tmp_path / "data").acquire()
        code = ("import sys; from raftkv.storage.lock import DataDirLock\n"
                "try:\n DataDirLock(sys.argv[1]).acquire()\n"
                "except Exception as e:\n print(e); sys.exit(3)\n")
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")],
                           capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[2])
        assert p.returncode == 3, p.stderr
        assert f"data dir {tmp_path / 'data'} is in use by another process (pid " in p.stdout
    DataDirLock(tmp_path / "data").acquire().release()  # free again
