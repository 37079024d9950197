"""The small file-system interface all WAL and snapshot I/O goes through.

``OsFS`` is the real thing (``os.pwrite``, ``os.fdatasync``, ``posix_fallocate``, a
directory fsync through an ``O_RDONLY`` descriptor). ``FaultyFS`` is an in-memory model
for power-loss tests: it keeps, per file, the durable bytes apart from the operations
applied since the last ``fdatasync``, and the durable directory entries apart from the
names created, renamed or removed since the last ``fsync_dir`` of their directory.
``crash_at`` makes the k-th mutating call raise ``PowerCut`` (so a test can stop a
program between any two of its writes and syncs); ``power_loss(rng)`` reverts every
file to its durable bytes, possibly keeping a prefix of the unsynced operations with
the next write torn at a random byte, and reverts every directory to its durable
entries. Invariant: nothing written and not synced survives a
power loss except such an ordered prefix, so a missing fsync shows up as lost data.
"""

from __future__ import annotations

import copy
import errno
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class File(Protocol):
    def pwrite(self, data: bytes, offset: int) -> None: ...
    def append(self, data: bytes) -> None: ...
    def fdatasync(self) -> None: ...
    def truncate(self, size: int) -> None: ...
    def preallocate(self, size: int) -> None: ...
    def size(self) -> int: ...
    def close(self) -> None: ...


class FS(Protocol):
    def open(self, path: Path, create: bool = False) -> File: ...
    def read(self, path: Path) -> bytes: ...
    def exists(self, path: Path) -> bool: ...
    def listdir(self, path: Path) -> list[str]: ...
    def mkdir(self, path: Path) -> None: ...
    def rename(self, src: Path, dst: Path) -> None: ...
    def remove(self, path: Path) -> None: ...
    def fsync_dir(self, path: Path) -> None: ...


# --- the real file system --------------------------------------------------------------


class OsFile:
    __slots__ = ("fd", "path")

    def __init__(self, path: Path, create: bool) -> None:
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o600)

    def pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def append(self, data: bytes) -> None:
        self.pwrite(data, os.fstat(self.fd).st_size)

    def fdatasync(self) -> None:
        os.fdatasync(self.fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def preallocate(self, size: int) -> None:
        cur = os.fstat(self.fd).st_size
        if size > cur:
            try:
                os.posix_fallocate(self.fd, 0, size)
            except OSError as e:  # e.g. tmpfs or filesystems without fallocate
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.ftruncate(self.fd, size)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class OsFS:
    def open(self, path: Path, create: bool = False) -> OsFile:
        return OsFile(path, create)

    def read(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def listdir(self, path: Path) -> list[str]:
        return sorted(os.listdir(path))

    def mkdir(self, path: Path) -> None:
        os.makedirs(path, exist_ok=True)

    def rename(self, src: Path, dst: Path) -> None:
        os.rename(src, dst)

    def remove(self, path: Path) -> None:
        os.remove(path)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the power-loss model -----------------------------------------------------------

_Op = tuple[str, int, bytes]  # ("write", offset, data) | ("truncate", size, b"")


def _apply(buf: bytearray, op: _Op) -> None:
    kind, n, data = op
    if kind == "write":
        if n > len(buf):
            buf.extend(bytes(n - len(buf)))
        buf[n : n + len(data)] = data
    elif kind == "truncate":
        del buf[n:]
    else:  # "extend": preallocate with zeros
        if n > len(buf):
            buf.extend(bytes(n - len(buf)))


@dataclass
class _Inode:
    durable: bytearray = field(default_factory=bytearray)
    current: bytearray = field(default_factory=bytearray)
    pending: list[_Op] = field(default_factory=list)


class FaultyFile:
    def __init__(self, fs: FaultyFS, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode
        self._closed = False

    def _op(self, op: _Op) -> None:
        if self._closed:
            raise ValueError("I/O on a closed file")
        self._fs.tick()
        _apply(self._inode.current, op)
        self._inode.pending.append(op)

    def pwrite(self, data: bytes, offset: int) -> None:
        self._op(("write", offset, bytes(data)))

    def append(self, data: bytes) -> None:
        self._op(("write", len(self._inode.current), bytes(data)))

    def fdatasync(self) -> None:
        self._fs.tick()
        if self._fs.fail_sync:
            raise OSError(errno.EIO, "injected fdatasync failure")
        self._fs.syncs += 1
        for op in self._inode.pending:
            _apply(self._inode.durable, op)
        self._inode.pending.clear()

    def truncate(self, size: int) -> None:
        self._op(("truncate", size, b""))

    def preallocate(self, size: int) -> None:
        self._op(("extend", size, b""))

    def size(self) -> int:
        return len(self._inode.current)

    def close(self) -> None:
        self._closed = True


class PowerCut(Exception):
    """Raised by ``FaultyFS`` at its ``crash_at``-th mutating call, before doing it."""


def _key(path: Path) -> str:
    return os.path.normpath(str(path))


class FaultyFS:
    """An in-memory file system that loses what was not synced on ``power_loss``."""

    def __init__(self) -> None:
        self.files: dict[str, _Inode] = {}
        self.durable_files: dict[str, _Inode] = {}
        self.dirs: set[str] = {"/"}
        self.durable_dirs: set[str] = {"/"}
        self.fail_sync = False
        self.syncs = 0
        self.ops = 0  # mutating calls so far
        self.crash_at: int | None = None

    def tick(self) -> None:
        """Count one mutating call; cut the power before the ``crash_at``-th."""
        if self.crash_at is not None and self.ops >= self.crash_at:
            raise PowerCut(f"power cut before mutating call #{self.ops}")
        self.ops += 1

    def clone(self) -> FaultyFS:
        """A deep copy (open handles keep pointing at the original)."""
        return copy.deepcopy(self)

    # namespace
    def _need_dir(self, path: str) -> None:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)

    def open(self, path: Path, create: bool = False) -> FaultyFile:
        k = _key(path)
        inode = self.files.get(k)
        if inode is None:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such file", k)
            self._need_dir(os.path.dirname(k))
            self.tick()
            inode = self.files[k] = _Inode()
        return FaultyFile(self, inode)

    def read(self, path: Path) -> bytes:
        k = _key(path)
        if k not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", k)
        return bytes(self.files[k].current)

    def exists(self, path: Path) -> bool:
        k = _key(path)
        return k in self.files or k in self.dirs

    def listdir(self, path: Path) -> list[str]:
        k = _key(path)
        self._need_dir(k)
        names = [os.path.basename(p) for p in (*self.files, *self.dirs)
                 if p != k and os.path.dirname(p) == k]
        return sorted(names)

    def mkdir(self, path: Path) -> None:
        k = _key(path)
        if k not in self.dirs:
            self.tick()
        while k not in self.dirs:
            self.dirs.add(k)
            k = os.path.dirname(k)

    def rename(self, src: Path, dst: Path) -> None:
        s, d = _key(src), _key(dst)
        if s not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", s)
        self._need_dir(os.path.dirname(d))
        self.tick()
        self.files[d] = self.files.pop(s)

    def remove(self, path: Path) -> None:
        k = _key(path)
        if k not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", k)
        self.tick()
        del self.files[k]

    def fsync_dir(self, path: Path) -> None:
        d = _key(path)
        self._need_dir(d)
        self.tick()
        if self.fail_sync:
            raise OSError(errno.EIO, "injected directory fsync failure")
        self.syncs += 1

        def in_dir(p: str) -> bool:
            return os.path.dirname(p) == d

        for p in [p for p in self.durable_files if in_dir(p)]:
            del self.durable_files[p]
        self.durable_files.update({p: i for p, i in self.files.items() if in_dir(p)})
        self.durable_dirs -= {p for p in self.durable_dirs if in_dir(p) and p != d}
        self.durable_dirs |= {p for p in self.dirs if in_dir(p) and p != d}

    # faults
    def power_loss(self, rng: random.Random) -> None:
        """Lose everything not synced; maybe keep an ordered prefix with a torn write."""
        self.crash_at = None
        inodes = {id(i): i for i in (*self.files.values(), *self.durable_files.values())}
        for inode in inodes.values():
            kept = bytearray(inode.durable)
            if inode.pending and rng.random() < 0.5:
                n = rng.randrange(len(inode.pending))
                for op in inode.pending[:n]:
                    _apply(kept, op)
                kind, off, data = inode.pending[n]
                if kind == "write" and data:
                    _apply(kept, (kind, off, data[: rng.randrange(len(data))]))
            inode.durable = kept
            inode.current = bytearray(kept)
            inode.pending = []
        # a directory that was never made durable loses its files too
        self.dirs = set(self.durable_dirs)
        self.files = {p: i for p, i in self.durable_files.items()
                      if os.path.dirname(p) in self.dirs}
        self.durable_files = dict(self.files)

    def flip_bit(self, path: Path, offset: int, bit: int = 0) -> None:
        """Corrupt one durable bit (a media error), in place."""
        inode = self.files[_key(path)]
        for buf in (inode.durable, inode.current):
            buf[offset] ^= 1 << bit
