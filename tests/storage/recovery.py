"""A miniature node in etcd's order over FaultyFS + the SQLite backend, cut at any point.

``run(seed, workdir, crash_at)`` plays a seeded script of operations (append entries
with group commit, advance commit, apply to the backend, backend commit, snapshot,
release, compaction entries, conflicting appends from a new leader). With ``crash_at``
the file system cuts the power before its k-th mutating call; the crash image is the
FaultyFS after ``power_loss`` plus a copy of the SQLite files at that instant.
``check(image, expect)`` recovers from the image and asserts: every entry and hard state
whose save returned is back (an interrupted save may show its old or new state, or a
record-aligned prefix of it), the newest snapshot file and marker are the last saved
ones, the backend holds exactly the state of entries 1..consistent_index (nothing
half-applied), the WAL covers everything above the consistent index, replay reaches the
committed state, and the WAL accepts appends again.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from raftkv.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage.backend import Backend, KeyValue
from raftkv.storage.fs import FaultyFS, PowerCut
from raftkv.storage.snap import Snapshotter
from raftkv.storage.wal import WAL

MEMBER = Path("/data/member")
WAL_DIR = MEMBER / "wal"
SNAP_DIR = MEMBER / "snap"
SEG = 700  # tiny segments: cuts happen every few batches
STEPS = 45


# --- the state machine the entries drive --------------------------------------------


@dataclass
class KV:
    kvs: dict[bytes, KeyValue] = field(default_factory=dict)
    rev: int = 0
    compacted: int = 0


def model_apply(m: KV, data: bytes) -> None:
    if data.startswith(b"P"):
        k, v = data[1:].split(b"=", 1)
        prev = m.kvs.get(k)
        m.rev += 1
        m.kvs[k] = KeyValue(k, v, prev.create_revision if prev else m.rev, m.rev,
                            prev.version + 1 if prev else 1, 0)
    elif data.startswith(b"D"):
        if data[1:] in m.kvs:
            m.rev += 1
            del m.kvs[data[1:]]
    elif data == b"C" and m.rev - 2 > m.compacted:
        m.compacted = m.rev - 2


def backend_apply(b: Backend, e: Entry) -> None:
    d = e.data
    if d == b"C":
        if b.current_revision() - 2 > b.compacted_revision():
            b.compact(b.current_revision() - 2, consistent_index=e.index)
            return
        d = b""
    with b.write_txn() as t:
        if d.startswith(b"P"):
            k, v = d[1:].split(b"=", 1)
            t.put(k, v)
        elif d.startswith(b"D"):
            t.delete_range(d[1:])
        t.end(e.index)


def model_at(log: dict[int, Entry], index: int) -> KV:
    m = KV()
    for i in range(1, index + 1):
        model_apply(m, log[i].data)
    return m


# --- the driver -------------------------------------------------------------------------


@dataclass
class Expect:
    """What must survive: everything whose call returned, plus what was in flight."""

    log: dict[int, Entry] = field(default_factory=dict)  # synced entries by index
    last: int = 0
    hs: HardState = field(default_factory=HardState)
    marker: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    snapshot: Snapshot | None = None
    committed: dict[int, Entry] = field(default_factory=dict)  # never change
    inflight: str = ""
    inflight_entries: list[Entry] = field(default_factory=list)
    inflight_hs: HardState | None = None
    inflight_marker: SnapshotMetadata | None = None
    inflight_snapshot: Snapshot | None = None


@dataclass
class Image:
    fs: FaultyFS
    db: Path

    def copy(self, name: str) -> Image:
        """An independent copy (recovery writes to both the FS and the database)."""
        d = self.db.parent / name
        d.mkdir()
        for suffix in ("", "-wal"):
            src = self.db.with_name(self.db.name + suffix)
            if src.exists():
                shutil.copyfile(src, d / src.name)
        return Image(self.fs.clone(), d / self.db.name)


def new_fs() -> FaultyFS:
    fs = FaultyFS()
    fs.mkdir(MEMBER)
    for d in ("/", "/data"):
        fs.fsync_dir(Path(d))
    return fs


def run(seed: int, workdir: Path, crash_at: int | None = None) -> tuple[Image, Expect, int]:
    """Play the script; returns the crash image (or the final state), the expectation and
    the number of mutating FS calls made."""
    rng = random.Random(seed)
    fs = new_fs()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "db"
    x = Expect()
    backend = Backend.open(db, batch_limit=3, batch_interval=3600)
    fs.crash_at = crash_at
    try:
        x.inflight = "create"
        wal = WAL.create(WAL_DIR, b"cluster-1", fs=fs, segment_size=SEG)
        x.inflight = ""  # from here on the WAL must exist
        snapper = Snapshotter(SNAP_DIR, fs=fs)
        term, applied, n = 1, 0, 0
        for _ in range(STEPS):
            r = rng.random()
            if r < 0.35:  # append a batch (sometimes a new leader overwrites the tail)
                start = x.last + 1
                if x.last > x.hs.commit and rng.random() < 0.25:
                    term += 1
                    start = rng.randint(x.hs.commit + 1, x.last)
                batch = []
                for i in range(start, start + rng.randint(1, 6)):
                    n += 1
                    k = b"k%d" % rng.randrange(6)
                    data = rng.choice([b"P%s=%d" % (k, n), b"P%s=%d" % (k, n), b"D" + k, b"C"])
                    batch.append(Entry(term, i, data=data))
                hs = HardState(term, 1, x.hs.commit)
                x.inflight, x.inflight_entries, x.inflight_hs = "save", batch, hs
                wal.save(hs, batch)
                for i in range(start, x.last + 1):
                    x.log.pop(i, None)
                x.log.update({e.index: e for e in batch})
                x.last, x.hs = batch[-1].index, hs
            elif r < 0.55 and x.hs.commit < x.last:  # commit advances
                hs = HardState(term, 1, rng.randint(x.hs.commit + 1, x.last))
                x.inflight, x.inflight_entries, x.inflight_hs = "save", [], hs
                wal.save(hs, [])
                x.hs = hs
                x.committed.update({i: x.log[i] for i in range(1, hs.commit + 1)})
            elif r < 0.75 and applied < x.hs.commit:  # apply committed entries
                for i in range(applied + 1, x.hs.commit + 1):
                    backend_apply(backend, x.log[i])
                    applied = i
                    backend.maybe_commit()
            elif r < 0.82:
                backend.force_commit()
            elif r < 0.92 and applied > x.marker.index:  # snapshot, as etcd: commit first
                backend.force_commit()
                meta = SnapshotMetadata(applied, x.log[applied].term, ConfState((1, 2, 3)))
                s = Snapshot(meta, b"applied=%d" % applied)
                x.inflight, x.inflight_snapshot = "snap", s
                snapper.save(s)
                x.snapshot = s
                x.inflight, x.inflight_marker = "marker", meta
                wal.save_snapshot(meta)
                x.marker = meta
            elif x.marker.index:  # release: backend is durable past the marker
                backend.force_commit()
                x.inflight = "release"
                wal.release_to(x.marker.index)
                snapper.release(keep=2)
            x.inflight = ""
    except PowerCut:
        pass
    ops = fs.ops
    image_dir = workdir / f"crash-{crash_at}"
    image_dir.mkdir()
    for suffix in ("", "-wal"):
        src = db.with_name(db.name + suffix)
        if src.exists():
            shutil.copyfile(src, image_dir / (db.name + suffix))
    backend.close_without_commit()
    return Image(fs, image_dir / db.name), x, ops


def _kvs(b: Backend) -> list[KeyValue]:
    return b.range(b"\0", b"\0")[0]


def check(image: Image, x: Expect, rng: random.Random) -> str:
    """Recover from the image after a power loss; returns a one-line summary."""
    fs = image.fs
    fs.power_loss(rng)
    if x.inflight == "create" and not WAL.exists(WAL_DIR, fs):
        return "cut during create: no WAL, nothing was promised"
    wal, st = WAL.open(WAL_DIR, fs=fs, segment_size=SEG)
    # hard state: the synced one, or the one being saved
    assert st.hard_state in (x.hs, x.inflight_hs if x.inflight == "save" else x.hs), (
        f"hard state {st.hard_state} != synced {x.hs}")
    # snapshot marker and file
    markers = [x.marker] + ([x.inflight_marker] if x.inflight == "marker" else [])
    assert st.snapshot in [m for m in markers if m is not None], (
        f"snapshot marker {st.snapshot} != last saved {x.marker}")
    newest = Snapshotter(SNAP_DIR, fs=fs).load_newest()
    snaps = [x.snapshot] + ([x.inflight_snapshot] if x.inflight == "snap" else [])
    assert newest in snaps, f"newest snapshot {newest and newest.metadata} != saved"
    # entries: the synced log above the marker, or with the in-flight batch on top
    got = {e.index: e for e in st.entries}
    torn = False
    want = {i: e for i, e in x.log.items() if i > st.snapshot.index}
    if got != want:
        assert x.inflight == "save" and x.inflight_entries, (
            f"WAL entries {sorted(got)} != synced {sorted(want)}; lost synced entries")
        b0 = x.inflight_entries[0].index
        prefix = {e.index: e for e in x.inflight_entries if e.index in got}
        expected = {i: e for i, e in want.items() if i < b0} | prefix
        assert got == expected, "WAL holds neither the old log nor a prefix of the batch"
        torn = 0 < len(prefix) < len(x.inflight_entries)
    # backend: exactly entries 1..ci, and the WAL covers what the backend lacks
    b = Backend.open(image.db)
    ci = b.consistent_index()
    assert ci <= x.hs.commit or (x.inflight_hs is not None and ci <= x.inflight_hs.commit)
    m = model_at(x.committed, ci)
    assert _kvs(b) == sorted(m.kvs.values(), key=lambda kv: kv.key), (
        f"backend data does not match consistent index {ci}")
    assert (b.current_revision(), b.compacted_revision()) == (m.rev, m.compacted)
    assert st.snapshot.index <= ci, (
        f"WAL starts after {st.snapshot.index} but the backend only has {ci}")
    # replay what the backend has not seen, up to the recovered commit index
    for i in range(ci + 1, st.hard_state.commit + 1):
        backend_apply(b, got[i])
    m = model_at(x.committed | {i: got[i] for i in got if i <= st.hard_state.commit},
                 st.hard_state.commit)
    assert _kvs(b) == sorted(m.kvs.values(), key=lambda kv: kv.key)
    b.close()
    # the WAL accepts appends after recovery (a torn tail was cut cleanly)
    last = max([st.snapshot.index, *got])
    nxt = Entry(st.hard_state.term or 1, last + 1, data=b"after")
    wal.save(st.hard_state, [nxt])
    wal.close()
    _, st2 = WAL.open(WAL_DIR, fs=fs, segment_size=SEG)
    assert st2.entries[-1] == nxt
    kind = "torn" if torn else ("inflight" if got != want else "clean")
    return (f"{kind} ci={ci} commit={st.hard_state.commit} entries={len(got)} "
            f"snap={st.snapshot.index}")
