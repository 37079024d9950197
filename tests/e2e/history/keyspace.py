"""A model of etcd's MVCC keyspace: the state of every key at every revision.

Writes are applied in revision order; each key keeps the list of its states with the
revision that produced them, so ``at(key, rev)`` answers what a read at ``rev`` must see.
Semantics follow etcd: a put sets ``mod_rev`` to the write's revision, bumps ``version``,
and keeps ``create_rev`` unless the key was absent (then ``create_rev = mod_rev``,
``version = 1``); a delete removes the key. Revisions only grow.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tests.e2e.history.history import KV


@dataclass(frozen=True)
class KeyState:
    value: str
    mod_rev: int
    create_rev: int
    version: int
    lease: int = 0
    exact: bool = True  # False: create_rev and version unknown (an unrevealed write came before)

    def as_kv(self, key: str) -> KV:
        return KV(key, self.value, self.mod_rev, self.create_rev, self.version, self.lease)


class Keyspace:
    def __init__(self) -> None:
        self._revs: dict[str, list[int]] = {}
        self._states: dict[str, list[KeyState | None]] = {}
        self.revision = 1  # a fresh etcd cluster starts at revision 1

    def at(self, key: str, rev: int) -> KeyState | None:
        revs = self._revs.get(key)
        if not revs:
            return None
        i = bisect.bisect_right(revs, rev) - 1
        return None if i < 0 else self._states[key][i]

    def last_write(self, key: str, rev: int) -> int:
        """Revision of the last write to ``key`` at or before ``rev`` (0 if none)."""
        revs = self._revs.get(key, [])
        i = bisect.bisect_right(revs, rev) - 1
        return 0 if i < 0 else revs[i]

    def keys_at(self, rev: int) -> dict[str, KeyState]:
        out = {}
        for key in self._revs:
            st = self.at(key, rev)
            if st is not None:
                out[key] = st
        return out

    def put(self, key: str, value: str, rev: int, lease: int = 0, exact: bool = True) -> None:
        """``exact=False``: the state before may be wrong, so only value and mod_rev are known."""
        old = self.at(key, rev)
        if old is None:
            new = KeyState(value, rev, rev, 1, lease, exact)
        else:
            new = KeyState(value, rev, old.create_rev, old.version + 1, lease,
                           exact and old.exact)
        self._record(key, rev, new)

    def delete(self, key: str, rev: int) -> bool:
        if self.at(key, rev) is None:
            return False
        self._record(key, rev, None)
        return True

    def _record(self, key: str, rev: int, state: KeyState | None) -> None:
        assert rev >= self.revision, f"revision went backwards: {rev} < {self.revision}"
        self.revision = rev
        revs = self._revs.setdefault(key, [])
        states = self._states.setdefault(key, [])
        if revs and revs[-1] == rev:
            states[-1] = state
        else:
            revs.append(rev)
            states.append(state)
