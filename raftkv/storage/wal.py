"""The write-ahead log: the source of durability for hard state, entries and snapshots.

Layout: ``<dir>/<seq:016x>-<index:016x>.wal`` segment files, ``seq`` contiguous from the
oldest retained one, ``index`` the first entry index expected in that segment. Each
segment is preallocated (64 MiB by default) and starts with a CRC record carrying the
chain value of the previous segment, then the metadata and the current hard state.

Record frame: ``>IBI`` = data length, record type, CRC32; the CRC of a record covers its
type byte and data, seeded with the CRC of the record before it (chained across
segments; a CRC record is self-checked and carries the chain value). Payloads use the
Raft core's versioned codec (``encode_entry``, ``encode_hard_state``,
``encode_snapshot`` with empty data for snapshot markers).

Invariants:
- ``save`` writes the whole batch then issues ONE fdatasync; when it returns, every
  record of the batch is durable. An fsync failure poisons the WAL (``WALSyncError``,
  never retried).
- A new segment is written under a ``.tmp`` name, preallocated, its header synced, then
  renamed and the directory fsynced; stale ``.tmp`` files are ignored and removed.
- On open, a bad record in the last segment followed only by zeros (or running past
  the end of the file) is a torn tail and is truncated, unless one flipped bit of its
  length explains it; any other bad record raises ``WALCorruptError`` naming the file and
  offset before anything in the directory is changed.
- Reading resolves conflicts as etcd does: an entry at index i replaces the entries at
  i and above read before it.
"""

from __future__ import annotations

import itertools
import logging
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from raftkv.raft.codec import (
    DecodeError,
    decode_entry,
    decode_hard_state,
    decode_snapshot,
    encode_entry,
    encode_hard_state,
    encode_snapshot,
)
from raftkv.raft.types import EMPTY_HARD_STATE, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage.errors import WALCorruptError, WALError, WALNotFoundError, WALSyncError
from raftkv.storage.fs import FS, File, OsFS
from raftkv.storage.metrics import WAL_FSYNC_SECONDS

log = logging.getLogger(__name__)

SEGMENT_SIZE = 64 * 1024 * 1024
_HDR = struct.Struct(">IBI")
_U32 = struct.Struct(">I")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class RecordType(IntEnum):
    CRC = 1
    METADATA = 2
    STATE = 3
    ENTRY = 4
    SNAPSHOT = 5


_TYPES = frozenset(int(t) for t in RecordType)


def segment_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def _crc(rtype: int, data: bytes | memoryview, seed: int) -> int:
    return zlib.crc32(data, zlib.crc32(bytes((rtype,)), seed))


def _frame(rtype: RecordType, data: bytes, chain: int) -> tuple[bytes, int]:
    """The framed record and the chain value after it."""
    if rtype is RecordType.CRC:
        crc = _crc(rtype, data, 0)
        return _HDR.pack(len(data), rtype, crc) + data, chain
    crc = _crc(rtype, data, chain)
    return _HDR.pack(len(data), rtype, crc) + data, crc


def _zeros(buf: bytes, start: int) -> bool:
    return start >= len(buf) or buf.count(0, start) == len(buf) - start


def _length_bit_flipped(buf: bytes, off: int, n: int, length: int, rtype: int, rcrc: int,
                        chain: int | None) -> bool:
    """Whether flipping one bit of the length makes the record check out: then a record
    that looks torn (zeros or EOF after its claimed end) is damaged, not torn."""
    seed = 0 if rtype == RecordType.CRC else (chain or 0)
    start = off + _HDR.size
    for bit in range(32):
        end = start + (length ^ (1 << bit))
        if end <= n and _crc(rtype, buf[start:end], seed) == rcrc:
            return True
    return False


@dataclass
class WALState:
    metadata: bytes
    hard_state: HardState
    snapshot: SnapshotMetadata  # newest snapshot marker (index 0 if none)
    entries: list[Entry]  # after snapshot.index, contiguous
    snapshots: list[SnapshotMetadata] = field(default_factory=list)  # every marker read


@dataclass
class _Scan:
    records: list[tuple[RecordType, bytes, int]]
    end: int  # offset just past the last good record
    chain: int
    torn: bool


def _scan(path: Path, buf: bytes, chain: int | None, is_last: bool) -> _Scan:
    records: list[tuple[RecordType, bytes, int]] = []
    off, n = 0, len(buf)
    while True:
        reason = ""
        claimed_end = n
        if off + _HDR.size > n:
            if _zeros(buf, off):
                break
            reason = "truncated record header"
        else:
            length, rtype, rcrc = _HDR.unpack_from(buf, off)
            if length == 0 and rtype == 0 and rcrc == 0:
                if _zeros(buf, off):
                    break
                reason = "data after a zero record header"
                claimed_end = off + _HDR.size
            else:
                end = off + _HDR.size + length
                claimed_end = min(end, n)
                data = buf[off + _HDR.size : end]
                if rtype not in _TYPES:
                    reason = f"unknown record type {rtype}"
                elif end > n:
                    reason = "record runs past the end of the file"
                elif _crc(rtype, data, 0 if rtype == RecordType.CRC else (chain or 0)) != rcrc:
                    reason = "CRC mismatch"
                elif rtype == RecordType.CRC:
                    carried = _U32.unpack(data)[0] if length == 4 else -1
                    if carried < 0 or (chain is not None and carried != chain):
                        raise WALCorruptError(path, off, "CRC chain broken between segments")
                    chain = carried
                else:
                    chain = rcrc
                if reason and _length_bit_flipped(buf, off, n, length, rtype, rcrc, chain):
                    raise WALCorruptError(path, off, "record length field is damaged")
                if not reason:
                    if not records and rtype != RecordType.CRC:
                        raise WALCorruptError(path, off, "segment does not start with a CRC record")
                    records.append((RecordType(rtype), data, off))
                    off = end
                    continue
        if is_last and _zeros(buf, claimed_end) and records:
            return _Scan(records, off, chain or 0, torn=True)
        raise WALCorruptError(path, off, reason)
    if not records:
        raise WALCorruptError(path, 0, "segment has no header records")
    return _Scan(records, off, chain or 0, torn=False)


class WAL:
    """An open WAL, positioned at the end of its last segment for appends."""

    def __init__(self, fs: FS, dirpath: Path, segment_size: int, metadata: bytes) -> None:
        self._fs = fs
        self._dir = Path(dirpath)
        self._segment_size = segment_size
        self._metadata = metadata
        self._segments: list[tuple[int, int]] = []  # (seq, first index), ascending
        self._file: File | None = None
        self._offset = 0
        self._chain = 0
        self._hs = EMPTY_HARD_STATE
        self._last_index = 0
        self._failed: str | None = None

    # --- construction ----------------------------------------------------------------

    @staticmethod
    def exists(dirpath: Path, fs: FS | None = None) -> bool:
        fs = fs or OsFS()
        return fs.exists(dirpath) and any(_NAME.match(n) for n in fs.listdir(dirpath))

    @classmethod
    def create(
        cls, dirpath: Path, metadata: bytes, fs: FS | None = None,
        segment_size: int = SEGMENT_SIZE,
    ) -> WAL:
        fs = fs or OsFS()
        dirpath = Path(dirpath)
        if cls.exists(dirpath, fs):
            raise WALError(f"WAL directory {dirpath} already holds a WAL")
        fs.mkdir(dirpath)
        fs.fsync_dir(dirpath.parent)  # FSYNC-SITE wal-create-dir
        for name in fs.listdir(dirpath):
            if name.endswith(".tmp"):
                fs.remove(dirpath / name)
        w = cls(fs, dirpath, segment_size, metadata)
        w._new_segment(0, 0)
        return w

    @classmethod
    def open(
        cls, dirpath: Path, fs: FS | None = None, segment_size: int = SEGMENT_SIZE,
    ) -> tuple[WAL, WALState]:
        fs = fs or OsFS()
        dirpath = Path(dirpath)
        if not cls.exists(dirpath, fs):
            raise WALNotFoundError(f"no WAL in {dirpath}")
        names = fs.listdir(dirpath)
        segs: list[tuple[int, int]] = []
        for name in names:
            m = _NAME.match(name)
            if m:
                segs.append((int(m.group(1), 16), int(m.group(2), 16)))
        segs.sort()
        for (s0, i0), (s1, i1) in itertools.pairwise(segs):
            if s1 != s0 + 1 or i1 < i0:
                raise WALCorruptError(dirpath / segment_name(s1, i1), 0,
                                      f"segment sequence broken after {segment_name(s0, i0)}")
        # Scan everything before changing anything.
        chain: int | None = None
        scans: list[_Scan] = []
        for k, (seq, idx) in enumerate(segs):
            path = dirpath / segment_name(seq, idx)
            scan = _scan(path, fs.read(path), chain, is_last=k == len(segs) - 1)
            chain = scan.chain
            scans.append(scan)
        metadata: bytes | None = None
        hs = EMPTY_HARD_STATE
        snap = SnapshotMetadata()
        markers: list[SnapshotMetadata] = []
        ents: list[Entry] = []
        for (seq, idx), scan in zip(segs, scans, strict=True):
            path = dirpath / segment_name(seq, idx)
            for rtype, data, off in scan.records:
                try:
                    if rtype == RecordType.METADATA:
                        if metadata is not None and metadata != data:
                            raise WALCorruptError(path, off, "metadata differs between segments")
                        metadata = bytes(data)
                    elif rtype == RecordType.STATE:
                        hs = decode_hard_state(data)
                    elif rtype == RecordType.ENTRY:
                        e = decode_entry(data)
                        if ents and ents[0].index <= e.index <= ents[-1].index + 1:
                            del ents[e.index - ents[0].index :]
                        elif ents and e.index < ents[0].index:
                            ents.clear()
                        elif ents and e.index > ents[-1].index + 1:
                            ents.clear()  # a snapshot marker covers the gap (checked below)
                        ents.append(e)
                    elif rtype == RecordType.SNAPSHOT:
                        marker = decode_snapshot(data).metadata
                        markers.append(marker)
                        if marker.index >= snap.index:
                            snap = marker
                except DecodeError as exc:
                    why = f"undecodable {rtype.name} record: {exc}"
                    raise WALCorruptError(path, off, why) from exc
        if metadata is None:
            raise WALCorruptError(dirpath / segment_name(*segs[0]), 0, "no metadata record")
        after = [e for e in ents if e.index > snap.index]
        if after and after[0].index != snap.index + 1:
            raise WALCorruptError(
                dirpath / segment_name(*segs[0]), 0,
                f"entries resume at {after[0].index} after snapshot index {snap.index}")
        # Now repair: truncate a torn tail, drop stale temp files.
        w = cls(fs, dirpath, segment_size, metadata)
        w._segments = segs
        last = scans[-1]
        last_path = dirpath / segment_name(*segs[-1])
        f = fs.open(last_path)
        if last.torn:
            log.warning("WAL %s: torn tail at offset %d truncated", last_path, last.end)
            f.truncate(last.end)
            f.preallocate(max(segment_size, last.end))
            w._sync(f)
        w._file, w._offset, w._chain = f, last.end, last.chain
        w._hs = hs
        w._last_index = max(ents[-1].index if ents else 0, snap.index)
        for name in names:
            if name.endswith(".wal.tmp"):
                fs.remove(dirpath / name)
        return w, WALState(metadata, hs, snap, after, markers)

    # --- writing ---------------------------------------------------------------------

    def _check(self) -> None:
        if self._failed:
            raise WALSyncError(f"WAL {self._dir} is unusable after an earlier failure: "
                               f"{self._failed}")
        if self._file is None:
            raise WALError(f"WAL {self._dir} is closed")

    def _sync(self, f: File) -> None:
        start = time.perf_counter()
        try:
            f.fdatasync()
        except OSError as e:
            self._failed = f"fdatasync failed: {e}"
            raise WALSyncError(f"WAL {self._dir}: fdatasync failed ({e}); the node must "
                               "stop, the write may or may not be durable") from e
        WAL_FSYNC_SECONDS.observe(time.perf_counter() - start)

    def _sync_dir(self) -> None:
        try:
            self._fs.fsync_dir(self._dir)
        except OSError as e:
            self._failed = f"directory fsync failed: {e}"
            raise WALSyncError(f"WAL {self._dir}: directory fsync failed ({e})") from e

    def _header(self) -> bytes:
        out, chain = [], self._chain
        for rtype, data in ((RecordType.CRC, _U32.pack(self._chain)),
                            (RecordType.METADATA, self._metadata),
                            (RecordType.STATE, encode_hard_state(self._hs))):
            rec, chain = _frame(rtype, data, chain)
            out.append(rec)
        self._chain = chain
        return b"".join(out)

    def _new_segment(self, seq: int, index: int) -> None:
        final = self._dir / segment_name(seq, index)
        tmp = final.with_name(final.name + ".tmp")
        f = self._fs.open(tmp, create=True)
        f.truncate(0)
        f.preallocate(self._segment_size)
        header = self._header()
        f.pwrite(header, 0)
        self._sync(f)  # FSYNC-SITE wal-cut-file
        self._fs.rename(tmp, final)
        self._sync_dir()  # FSYNC-SITE wal-cut-dir
        self._file, self._offset = f, len(header)
        self._segments.append((seq, index))

    def _cut(self) -> None:
        assert self._file is not None
        self._file.truncate(self._offset)
        self._sync(self._file)
        self._file.close()
        self._file = None
        self._new_segment(self._segments[-1][0] + 1, self._last_index + 1)

    def _write(self, buf: bytes, sync: bool = True) -> None:
        assert self._file is not None
        try:
            self._file.pwrite(buf, self._offset)
        except OSError as e:
            self._failed = f"write failed: {e}"
            raise WALError(f"WAL {self._dir}: write failed ({e})") from e
        if sync:
            self._sync(self._file)  # FSYNC-SITE wal-save
        self._offset += len(buf)

    def save(self, hard_state: HardState | None, entries: list[Entry],
             sync: bool = True) -> None:
        """Append entries, then the hard state if it changed; one fdatasync for all.

        ``sync=False`` (Raft's ``Ready.must_sync`` false: only the commit index moved,
        which Raft can recover) writes without the fdatasync; a later synced save or a
        segment cut makes it durable."""
        self._check()
        parts: list[bytes] = []
        chain = self._chain
        for e in entries:
            rec, chain = _frame(RecordType.ENTRY, encode_entry(e), chain)
            parts.append(rec)
        write_hs = hard_state is not None and hard_state != self._hs
        if hard_state is not None and write_hs:
            rec, chain = _frame(RecordType.STATE, encode_hard_state(hard_state), chain)
            parts.append(rec)
        if not parts:
            return
        self._write(b"".join(parts), sync=sync or bool(entries))
        self._chain = chain
        if hard_state is not None:
            self._hs = hard_state
        if entries:
            self._last_index = entries[-1].index
        if self._offset >= self._segment_size:
            self._cut()

    def save_snapshot(self, meta: SnapshotMetadata) -> None:
        """Record a snapshot marker (synced); entries up to meta.index are then covered."""
        self._check()
        rec, chain = _frame(RecordType.SNAPSHOT, encode_snapshot(Snapshot(meta)), self._chain)
        self._write(rec)
        self._chain = chain
        self._last_index = max(self._last_index, meta.index)
        if self._offset >= self._segment_size:
            self._cut()

    def release_to(self, index: int) -> None:
        """Delete segments wholly below ``index`` (keeping, as etcd, the largest segment
        that starts below it). The caller promises the backend is durable past index."""
        self._check()
        keep = 0
        for k, (_, start) in enumerate(self._segments):
            if start < index:
                keep = k
        if keep == 0:
            return
        for seq, start in self._segments[:keep]:
            self._fs.remove(self._dir / segment_name(seq, start))
        self._segments = self._segments[keep:]
        self._sync_dir()

    # --- introspection ---------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def hard_state(self) -> HardState:
        return self._hs

    def segment_names(self) -> list[str]:
        return [segment_name(s, i) for s, i in self._segments]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
