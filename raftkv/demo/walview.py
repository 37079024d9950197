"""A running member's Raft log, read from a copy of its WAL: what the split-brain demo
shows of the old leader's log before and after the partition heals.

Invariants: the member's own WAL directory is never opened or changed (the directory is
copied first; a record the member is writing meanwhile is a torn tail in the copy, which
opening the copy truncates there, as a restart would); the entries returned are the log
as a restart would read it (an entry at index i replaces those at i and above read
before it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from raftkv.mvcc import commands
from raftkv.raft.types import Entry, EntryType
from raftkv.storage.wal import WAL


def read_log(wal_dir: Path) -> dict[int, Entry]:
    """The entries in ``wal_dir``'s WAL (after its newest snapshot), by index."""
    with tempfile.TemporaryDirectory(prefix="raftkv-walview-") as tmp:
        copy = Path(tmp) / "wal"
        shutil.copytree(wal_dir, copy)
        wal, state = WAL.open(copy)
        wal.close()
    return {e.index: e for e in state.entries}


def describe(e: Entry | None) -> str:
    """One line: the entry's term and what it asks for (a put names its key)."""
    if e is None:
        return "(no entry)"
    if e.type == EntryType.CONF_CHANGE:
        return f"term {e.term}: membership change"
    if not e.data:
        return f"term {e.term}: empty entry (a new leader's first)"
    try:
        cmd = commands.decode(e.data)
    except commands.CommandError:
        return f"term {e.term}: {len(e.data)} bytes"
    key = getattr(cmd.request, "key", b"")
    what = cmd.kind.name.lower().replace("_", " ")
    return f"term {e.term}: {what} {key.decode(errors='replace')}" if key else \
        f"term {e.term}: {what}"


def put_key(e: Entry | None) -> bytes | None:
    """The key a put entry writes (None for anything else)."""
    if e is None or e.type != EntryType.NORMAL or not e.data:
        return None
    try:
        cmd = commands.decode(e.data)
    except commands.CommandError:
        return None
    return bytes(cmd.request.key) if cmd.kind == commands.Kind.PUT else None
