"""Storage errors, each carrying one sentence a person can act on.

Invariants: ``WALCorruptError`` names the segment file and byte offset of the first bad
record; ``WALSyncError`` means durability is unknown and the process must stop (an
fsync is never retried: the kernel may already have dropped the dirty pages).
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by ``raftkv.storage``."""


class WALError(StorageError):
    pass


class WALCorruptError(WALError):
    """A record before the tail of the log does not check out; nothing was changed."""

    def __init__(self, path: object, offset: int, reason: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"WAL file {self.path} is corrupt at offset {offset} ({reason}); "
            "the WAL directory was left untouched"
        )


class WALSyncError(WALError):
    """fdatasync/fsync failed: durability of the WAL is unknown; the node must stop."""


class WALNotFoundError(WALError):
    pass


class SnapshotCorruptError(StorageError):
    pass


class NoSnapshotError(StorageError):
    pass


class CompactedError(StorageError):
    """The requested revision has been compacted."""


class FutureRevError(StorageError):
    """The requested revision is newer than the current revision."""


class DataDirLockedError(StorageError):
    pass
