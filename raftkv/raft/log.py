"""The Raft log as the core sees it: stable entries (in Storage) followed by unstable ones.

Invariants: ``applied <= committed <= last_index()``; the unstable part starts at
``unstable.offset`` and is contiguous with the stable part (or with an unstable snapshot);
entries are never removed at or below ``committed`` (a conflicting append below the
commit index is a safety violation and raises).
"""

from __future__ import annotations

from raftkv.raft.errors import Compacted, RaftError, Unavailable
from raftkv.raft.storage import NO_LIMIT, Storage, limit_size
from raftkv.raft.types import Entry, Snapshot


class Unstable:
    """Entries and a snapshot not yet persisted by the caller."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.metadata.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        gt = self.maybe_term(i)
        if gt is None or gt != t or i < self.offset:
            return  # an unstable snapshot or a newer, conflicting append replaced it
        del self.entries[: i + 1 - self.offset]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    def __init__(self, storage: Storage, max_next_ents_size: int = NO_LIMIT) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.max_next_ents_size = max_next_ents_size

    def __repr__(self) -> str:
        return (
            f"committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, len(unstable)={len(self.unstable.entries)}"
        )

    # --- indexes and terms ---

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """The term of entry ``i``; raises Compacted/Unavailable outside the log."""
        dummy = self.first_index() - 1
        if i < dummy:
            raise Compacted(f"index {i} compacted")
        if i > self.last_index():
            raise Unavailable(f"index {i} beyond last index")
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def term_or_zero(self, i: int) -> int:
        try:
            return self.term(i)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Raft §5.4.1: the candidate's log is at least as up-to-date as ours."""
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    # --- appending ---

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: list[Entry]
    ) -> int | None:
        """Append ``ents`` after (index, log_term) if it matches; returns the new last index."""
        if not self.match_term(index, log_term):
            return None
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise RaftError(f"entry {ci} conflicts with committed entry {self.committed}")
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, lastnewi))
        return lastnewi

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise RaftError(f"append after {after} is below committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: list[Entry]) -> int:
        """The index of the first entry that is new or conflicts; 0 if all already present."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, with its term.

        Used for fast log backtracking: a rejection carries a hint so the leader skips
        whole terms of conflicting entries instead of probing one index at a time.
        """
        while True:
            try:
                t = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if t <= term:
                return index, t
            index -= 1

    # --- commit, apply, persist ---

    def commit_to(self, tocommit: int) -> None:
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise RaftError(
                    f"commit {tocommit} is out of range [last index {self.last_index()}]"
                )
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit up to ``max_index`` only if that entry is of ``term`` (Raft §5.4.2)."""
        if max_index > self.committed and self.term_or_zero(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise RaftError(f"applied {i} out of range [{self.applied}, {self.committed}]")
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_next_committed_ents(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_ents(self) -> list[Entry]:
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, i: int, max_size: int) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        return self.entries(self.first_index(), NO_LIMIT)

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in [lo, hi), within ``max_size`` bytes (at least one entry)."""
        if lo == hi:
            return []
        fi = self.first_index()
        if lo < fi:
            raise Compacted(f"index {lo} compacted (first index {fi})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"slice [{lo},{hi}) out of bound {fi}..{self.last_index()}")
        off = self.unstable.offset
        ents: list[Entry] = []
        if lo < off:
            stored = self.storage.entries(lo, min(hi, off), max_size)
            if len(stored) < min(hi, off) - lo:
                return stored  # hit the size limit inside storage
            ents = stored
        if hi > off:
            uns = self.unstable.slice(max(lo, off), hi)
            ents = ents + uns if ents else uns
        return limit_size(ents, max_size)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.metadata.index
        self.unstable.restore(s)
