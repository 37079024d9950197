"""Consensus core: a deterministic Raft state machine stepped by its caller; no I/O.

Use :class:`RawNode`: feed it ``tick()``, ``step(msg)``, ``propose(data)``,
``propose_conf_change(cc)``, ``read_index(ctx)`` and ``transfer_leadership(to)``; take a
:class:`Ready`, persist, send, apply, then ``advance()``. See ``node.py`` for the order.
The package imports no clock, randomness, threads, sockets or asyncio (checked by
import-linter): time is ticks and the random source is injected.
"""

from raftkv.raft.errors import (
    LearnerNotCaughtUp,
    ProposalDropped,
    RaftError,
    UncommittedSizeExceeded,
)
from raftkv.raft.node import RawNode, Ready, Status, bootstrap
from raftkv.raft.raft import Config
from raftkv.raft.storage import MemoryStorage, Storage
from raftkv.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)

__all__ = [
    "NONE",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "LearnerNotCaughtUp",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SnapshotMetadata",
    "SoftState",
    "StateType",
    "Status",
    "Storage",
    "UncommittedSizeExceeded",
    "bootstrap",
]
