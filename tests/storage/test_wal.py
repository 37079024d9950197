"""WAL: round trips, group commit, conflicts, segments and release, torn tails, bit flips."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftkv.raft.types import ConfState, Entry, HardState, SnapshotMetadata
from raftkv.storage.errors import WALCorruptError, WALError, WALNotFoundError, WALSyncError
from raftkv.storage.fs import FaultyFS, OsFS
from raftkv.storage.metrics import REGISTRY
from raftkv.storage.wal import WAL, segment_name

D = Path("/data/member/wal")


def faulty() -> FaultyFS:
    fs = FaultyFS()
    fs.mkdir(D.parent)
    fs.fsync_dir(Path("/"))
    fs.fsync_dir(Path("/data"))
    return fs


def ents(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(term, i, data=bytes([i % 251]) * size) for i in range(lo, hi + 1)]


def test_round_trip_on_disk(tmp_path: Path) -> None:
    w = WAL.create(tmp_path / "wal", b"cluster-7", fs=OsFS(), segment_size=4096)
    w.save(HardState(1, 2, 0), ents(1, 50, size=100))
    w.save(HardState(2, 2, 30), ents(51, 60, term=2, size=100))
    w.close()
    w, st = WAL.open(tmp_path / "wal", segment_size=4096)
    assert st.metadata == b"cluster-7"
    assert st.hard_state == HardState(2, 2, 30)
    assert st.entries == ents(1, 50, size=100) + ents(51, 60, term=2, size=100)
    assert len(w.segment_names()) > 1  # 4 KiB segments were cut
    w.save(None, ents(61, 61, term=2))
    w.close()
    _, st = WAL.open(tmp_path / "wal", segment_size=4096)
    assert st.entries[-1] == ents(61, 61, term=2)[0]


def test_missing_and_existing() -> None:
    fs = faulty()
    with pytest.raises(WALNotFoundError):
        WAL.open(D, fs=fs)
    WAL.create(D, b"m", fs=fs).close()
    with pytest.raises(WALError):
        WAL.create(D, b"m", fs=fs)


def test_group_commit_one_fdatasync_per_batch() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=1 << 20)
    before = fs.syncs
    w.save(HardState(1, 1, 0), ents(1, 256))
    assert fs.syncs == before + 1
    w.save(HardState(1, 1, 0), [])  # unchanged hard state, nothing to write
    w.save(None, [])
    assert fs.syncs == before + 1
    w.save(HardState(1, 1, 5), [])
    assert fs.syncs == before + 2
    count = REGISTRY.get_sample_value("etcd_disk_wal_fsync_duration_seconds_count")
    assert count is not None and count >= 2


def test_conflicting_suffix_replaced_on_read() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=300)
    w.save(HardState(1, 1, 3), ents(1, 10))
    w.save(HardState(2, 0, 3), ents(6, 8, term=2))  # a new leader overwrote 6..10
    w.save(None, ents(9, 9, term=2))
    w.close()
    _, st = WAL.open(D, fs=fs, segment_size=300)
    assert st.entries == ents(1, 5) + ents(6, 9, term=2)


def test_snapshot_marker_and_release() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=256)
    for i in range(1, 41):
        w.save(HardState(1, 1, i - 1), ents(i, i))
    meta = SnapshotMetadata(25, 1, ConfState((1, 2, 3)))
    w.save_snapshot(meta)
    n = len(w.segment_names())
    w.release_to(25)
    assert len(w.segment_names()) < n
    starts = [int(s.split("-")[1][:16], 16) for s in w.segment_names()]
    assert starts[0] < 25 and (len(starts) == 1 or starts[1] >= 25)
    w.close()
    _, st = WAL.open(D, fs=fs, segment_size=256)
    assert st.snapshot == meta
    assert st.entries == ents(26, 40)
    assert st.hard_state == HardState(1, 1, 39)


def test_snapshot_install_beyond_log() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs)
    w.save(HardState(1, 1, 2), ents(1, 5))
    w.save_snapshot(SnapshotMetadata(100, 3))  # a follower installs a leader snapshot
    w.save(HardState(3, 0, 100), ents(101, 103, term=3))
    w.close()
    _, st = WAL.open(D, fs=fs)
    assert st.snapshot.index == 100 and st.entries == ents(101, 103, term=3)


def test_fsync_failure_is_fatal_and_never_retried() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs)
    fs.fail_sync = True
    with pytest.raises(WALSyncError):
        w.save(HardState(1, 1, 0), ents(1, 1))
    fs.fail_sync = False
    with pytest.raises(WALSyncError):  # poisoned: later calls fail without any fsync
        w.save(HardState(1, 1, 0), ents(2, 2))
    with pytest.raises(WALSyncError):
        w.save_snapshot(SnapshotMetadata(1, 1))


def _segment_bytes(fs: FaultyFS) -> dict[str, bytes]:
    return {p: bytes(i.current) for p, i in fs.files.items()}


def _last_segment(fs: FaultyFS) -> Path:
    return D / fs.listdir(D)[-1]


def test_torn_tail_truncated_at_every_byte() -> None:
    """Cut the last record (a 3-entry batch) at every byte: the batch is lost whole or
    kept in part up to a record boundary, earlier data survives, appends resume."""
    base = faulty()
    w = WAL.create(D, b"m", fs=base, segment_size=4096)
    w.save(HardState(1, 1, 0), ents(1, 5))
    size_before = w._offset
    w.close()
    tail = faulty()
    w = WAL.create(D, b"m", fs=tail, segment_size=4096)
    w.save(HardState(1, 1, 0), ents(1, 5))
    w.save(None, ents(6, 8, size=40))
    end = w._offset
    w.close()
    seg = _last_segment(tail)
    lengths: set[int] = set()
    for cut in range(size_before, end):
        fs = tail.clone()
        inode = fs.files[str(seg)]
        for buf in (inode.durable, inode.current):
            buf[cut:end] = bytes(end - cut)
        w2, st = WAL.open(D, fs=fs, segment_size=4096)
        got = [e.index for e in st.entries]
        assert got[:5] == [1, 2, 3, 4, 5] and got == list(range(1, len(got) + 1))
        assert len(got) < 8
        lengths.add(len(got))
        w2.save(HardState(1, 1, 4), ents(len(got) + 1, 9, size=7))
        w2.close()
        _, st = WAL.open(D, fs=fs, segment_size=4096)
        assert [e.index for e in st.entries] == list(range(1, 10))
    assert lengths == {5, 6, 7}


def test_bit_flip_mid_file_names_file_and_offset() -> None:
    """Flip every bit position (sampled) of every record but the last: WALCorruptError
    naming the file and the damaged record's offset; the directory is left untouched."""
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=1024)
    for i in range(1, 31):
        w.save(HardState(1, 1, i - 1), ents(i, i, size=20))
    w.close()
    names = fs.listdir(D)
    assert len(names) >= 3
    rng = random.Random(6)
    checked = 0
    for k, name in enumerate(names):
        path = D / name
        buf = fs.read(path)
        # record offsets, by walking the frames
        offs, off = [], 0
        while off + 9 <= len(buf) and buf[off:off + 9] != bytes(9):
            offs.append(off)
            off += 9 + int.from_bytes(buf[off:off + 4], "big")
        last = k == len(names) - 1
        for r, start in enumerate(offs[:-1] if last else offs):
            stop = offs[r + 1] if r + 1 < len(offs) else off
            for byte in rng.sample(range(start, stop), min(6, stop - start)):
                bad = fs.clone()
                bad.flip_bit(path, byte, rng.randrange(8))
                before = _segment_bytes(bad)
                with pytest.raises(WALCorruptError) as info:
                    WAL.open(D, fs=bad, segment_size=1024)
                assert info.value.path == str(path) and info.value.offset == start, (
                    name, byte, str(info.value))
                assert str(path) in str(info.value) and f"offset {start}" in str(info.value)
                assert _segment_bytes(bad) == before
                checked += 1
    assert checked > 100


def test_missing_middle_segment_is_corruption() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=256)
    for i in range(1, 30):
        w.save(None, ents(i, i))
    w.close()
    names = fs.listdir(D)
    fs.remove(D / names[1])
    with pytest.raises(WALCorruptError, match="sequence"):
        WAL.open(D, fs=fs, segment_size=256)


def test_stale_tmp_segment_ignored() -> None:
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs)
    w.save(HardState(1, 1, 0), ents(1, 3))
    w.close()
    f = fs.open(D / (segment_name(1, 4) + ".tmp"), create=True)
    f.pwrite(b"garbage", 0)
    _, st = WAL.open(D, fs=fs)
    assert [e.index for e in st.entries] == [1, 2, 3]
    assert not any(n.endswith(".tmp") for n in fs.listdir(D))


def test_must_sync_false_writes_without_fdatasync() -> None:
    """Raft's Ready.must_sync is false when only the commit index moved: the record is
    written unsynced (a crash may lose it; Raft recovers the commit index). Entries are
    synced whatever the flag says."""
    fs = faulty()
    w = WAL.create(D, b"m", fs=fs, segment_size=1 << 20)
    w.save(HardState(1, 1, 0), ents(1, 3))
    before = fs.syncs
    w.save(HardState(1, 1, 3), [], sync=False)
    assert fs.syncs == before
    w.save(HardState(1, 1, 3), ents(4, 4), sync=False)
    assert fs.syncs == before + 1
    w.close()
    _, state = WAL.open(D, fs=fs)
    assert state.hard_state.commit == 3 and state.entries[-1].index == 4
