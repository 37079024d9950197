"""The stable-storage interface the core reads from, and an in-memory implementation.

The core never writes to storage: the caller persists what a ``Ready`` hands it and then
appends it here (etcd-io/raft's MemoryStorage pattern). Invariants of
:class:`MemoryStorage`: ``ents[0]`` is a dummy entry holding the index and term of the
last compaction (or snapshot); entries are contiguous; ``first_index() = ents[0].index+1``.
"""

from __future__ import annotations

from typing import Protocol

from raftkv.raft.errors import Compacted, SnapshotOutOfDate, Unavailable
from raftkv.raft.types import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)

NO_LIMIT = 1 << 62


def limit_size(ents: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of ``ents`` within ``max_size`` bytes of data; never empty."""
    if len(ents) <= 1 or max_size >= NO_LIMIT:
        return ents
    size = 0
    for i, e in enumerate(ents):
        size += len(e.data) + 16
        if size > max_size and i > 0:
            return ents[:i]
    return ents


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...
    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]: ...
    def term(self, i: int) -> int: ...
    def last_index(self) -> int: ...
    def first_index(self) -> int: ...
    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """Stable storage in memory: what the caller has persisted, mirrored for the core."""

    def __init__(self) -> None:
        self.hard_state: HardState = EMPTY_HARD_STATE
        self.snap: Snapshot = Snapshot()
        self.ents: list[Entry] = [Entry(0, 0)]

    # --- reads (the Storage protocol) ---

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self.snap.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise Compacted(f"index {lo} compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries up to {hi - 1} requested, last index {self.last_index()}")
        return limit_size(self.ents[lo - offset : hi - offset], max_size)

    def term(self, i: int) -> int:
        offset = self.ents[0].index
        if i < offset:
            raise Compacted(f"index {i} compacted (first index {offset + 1})")
        if i - offset >= len(self.ents):
            raise Unavailable(f"index {i} beyond last index {self.last_index()}")
        return self.ents[i - offset].term

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def snapshot(self) -> Snapshot:
        return self.snap

    # --- writes (by the caller, after persisting) ---

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the log with a snapshot (a follower installing the leader's)."""
        if snap.metadata.index < self.snap.metadata.index:
            raise SnapshotOutOfDate(
                f"snapshot at {snap.metadata.index} older than {self.snap.metadata.index}"
            )
        self.snap = snap
        self.ents = [Entry(snap.metadata.term, snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the application state at ``index`` (which must be applied)."""
        if index <= self.snap.metadata.index:
            raise SnapshotOutOfDate(
                f"snapshot at {index} not newer than {self.snap.metadata.index}"
            )
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} beyond last index {self.last_index()}")
        term = self.term(index)
        self.snap = Snapshot(SnapshotMetadata(index, term, conf_state), data)
        return self.snap

    def compact(self, compact_index: int) -> None:
        """Drop entries up to ``compact_index`` (the application has a snapshot of them)."""
        offset = self.ents[0].index
        if compact_index <= offset:
            raise Compacted(f"index {compact_index} already compacted")
        if compact_index > self.last_index():
            raise Unavailable(f"compact index {compact_index} beyond {self.last_index()}")
        i = compact_index - offset
        self.ents = [Entry(self.ents[i].term, self.ents[i].index), *self.ents[i + 1 :]]

    def append(self, entries: list[Entry]) -> None:
        """Append persisted entries, truncating any conflicting suffix."""
        if not entries:
            return
        first = self.first_index()
        last = entries[0].index + len(entries) - 1
        if last < first:
            return  # all compacted already
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self.ents[0].index
        if offset > len(self.ents):
            raise Unavailable(
                f"missing log entries: last {self.last_index()}, appending at {entries[0].index}"
            )
        del self.ents[offset:]
        self.ents.extend(entries)
