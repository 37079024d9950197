"""One process per data dir: an exclusive, non-blocking ``flock`` on ``<data-dir>/.lock``.

Invariants: the lock is held for as long as the ``DataDirLock`` is acquired (the kernel
drops it if the process dies); a second holder (another process, or another
``DataDirLock`` in the same process) gets ``DataDirLockedError`` with one sentence
naming the directory and, when known, the pid written by the holder.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from raftkv.storage.errors import DataDirLockedError


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_file = self.path / ".lock"
        self._fd = -1

    def acquire(self) -> DataDirLock:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise DataDirLockedError(
                f"data dir {self.path} is in use by another process{who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
