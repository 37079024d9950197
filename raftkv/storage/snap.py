"""Raft snapshot files: ``<dir>/<term:016x>-<index:016x>.snap``, written atomically.

File format: ``b"RKVSNAP1"``, CRC32 (``>I``) and length (``>Q``) of the payload, then the
payload, which is the Raft core's ``encode_snapshot`` encoding.

Invariants: ``save`` writes a ``.tmp`` file, fdatasyncs it, renames it into place and
fsyncs the directory, so after it returns the snapshot survives power loss and a
reader never sees a partial file under a ``.snap`` name. ``load_newest`` returns the
newest file that checks out: a corrupt newer file is logged (WARNING, naming the file
and the reason), recorded in ``broken``, left in place for inspection, and the next
older valid one is used, as etcd does (etcd renames it ``.broken``).
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from raftkv import failpoints
from raftkv.raft.codec import DecodeError, decode_snapshot, encode_snapshot
from raftkv.raft.types import Snapshot, SnapshotMetadata
from raftkv.storage.errors import SnapshotCorruptError
from raftkv.storage.fs import FS, OsFS

log = logging.getLogger(__name__)

MAGIC = b"RKVSNAP1"
_HDR = struct.Struct(">IQ")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def snap_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}.snap"


def encode_file(s: Snapshot) -> bytes:
    payload = encode_snapshot(s)
    return MAGIC + _HDR.pack(zlib.crc32(payload), len(payload)) + payload


def decode_file(path: Path, buf: bytes) -> Snapshot:
    head = len(MAGIC) + _HDR.size
    if len(buf) < head or not buf.startswith(MAGIC):
        raise SnapshotCorruptError(f"snapshot file {path} has no valid header")
    crc, n = _HDR.unpack_from(buf, len(MAGIC))
    payload = buf[head:]
    if len(payload) != n:
        raise SnapshotCorruptError(f"snapshot file {path} is truncated ({len(payload)} of "
                                   f"{n} payload bytes)")
    if zlib.crc32(payload) != crc:
        raise SnapshotCorruptError(f"snapshot file {path} fails its CRC check")
    try:
        return decode_snapshot(payload)
    except DecodeError as e:
        raise SnapshotCorruptError(f"snapshot file {path} cannot be decoded: {e}") from e


class Snapshotter:
    def __init__(self, dirpath: Path, fs: FS | None = None) -> None:
        self.dir = Path(dirpath)
        self.fs = fs or OsFS()
        self.broken: list[str] = []
        if not self.fs.exists(self.dir):
            self.fs.mkdir(self.dir)
            self.fs.fsync_dir(self.dir.parent)

    def _names(self) -> list[tuple[int, int, str]]:
        out = []
        for name in self.fs.listdir(self.dir):
            m = _NAME.match(name)
            if m:
                out.append((int(m.group(2), 16), int(m.group(1), 16), name))
        return sorted(out)  # by index, then term

    def save(self, snapshot: Snapshot) -> None:
        if snapshot.is_empty():
            raise ValueError("refusing to save an empty snapshot")
        md = snapshot.metadata
        final = self.dir / snap_name(md.term, md.index)
        tmp = final.with_name(final.name + ".tmp")
        f = self.fs.open(tmp, create=True)
        try:
            f.truncate(0)
            f.pwrite(encode_file(snapshot), 0)
            f.fdatasync()  # FSYNC-SITE snap-file
        finally:
            f.close()
        failpoints.hit("raftBeforeSnapshotRename")
        self.fs.rename(tmp, final)
        self.fs.fsync_dir(self.dir)  # FSYNC-SITE snap-dir

    def load_newest(self) -> Snapshot | None:
        """The newest valid snapshot, or None if there is none at all."""
        return self._newest_valid(n for _, _, n in reversed(self._names()))

    def load_newest_available(self, markers: list[SnapshotMetadata]) -> Snapshot | None:
        """The newest valid snapshot that the WAL has a marker for (etcd's
        LoadNewestAvailable): a file saved just before a crash that kept its WAL marker
        from being written is an orphan and is ignored."""
        wanted = {(m.term, m.index) for m in markers}
        return self._newest_valid(n for index, term, n in reversed(self._names())
                                  if (term, index) in wanted)

    def _newest_valid(self, names: Iterable[str]) -> Snapshot | None:
        """The first of ``names`` (newest first) that decodes; corrupt ones are noted."""
        for name in names:
            path = self.dir / name
            try:
                return decode_file(path, self.fs.read(path))
            except SnapshotCorruptError as e:
                log.warning("%s; falling back to an older snapshot", e)
                if name not in self.broken:
                    self.broken.append(name)
        return None

    def release(self, keep: int) -> None:
        """Keep the newest ``keep`` snapshot files; remove older ones and stale temps."""
        names = [n for _, _, n in self._names()]
        doomed = names[: max(0, len(names) - keep)]
        doomed += [n for n in self.fs.listdir(self.dir) if n.endswith(".snap.tmp")]
        for name in doomed:
            self.fs.remove(self.dir / name)
        if doomed:
            self.fs.fsync_dir(self.dir)
