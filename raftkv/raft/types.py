"""The consensus core's value types: entries, messages, hard state, snapshots, conf changes.

Invariants: every type here is plain data with no behaviour beyond trivial accessors;
node IDs are positive ints (0 means "none"); terms and indexes start at 1 (0 is "before
the log"). Entries are immutable (``NamedTuple``) so the core can share them between the
log, storage and messages without copying. The wire and disk encodings live in
``codec.py`` — never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

NONE = 0  # "no node": no leader, no vote


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    term: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


class MessageType(IntEnum):
    HUP = 0  # local: start an election
    BEAT = 1  # local: leader sends heartbeats
    PROP = 2  # proposal (local, or forwarded by a follower)
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local: transport reports a peer unreachable
    SNAP_STATUS = 11  # local: transport reports how sending a snapshot went
    CHECK_QUORUM = 12  # local
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
        MessageType.READ_INDEX_RESP,
        MessageType.PRE_VOTE_RESP,
    }
)


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership a snapshot (or the applied log) describes."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


@dataclass(slots=True)
class Message:
    type: MessageType
    to: int = NONE
    sender: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What a node must persist before it answers: its term, its vote, the commit index."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the application about (not persisted)."""

    lead: int = NONE
    state: StateType = StateType.FOLLOWER


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner
    REMOVE_NODE = 1
    ADD_LEARNER_NODE = 2
    UPDATE_NODE = 3  # a member's attributes (peer URLs) change; the configuration does not


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change, one node at a time (no joint consensus)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the applied index reaches ``index``."""

    index: int
    request_ctx: bytes
