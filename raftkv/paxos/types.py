"""Paxos's vocabulary: proposal numbers (ballots), messages, the durable state, and Ready.

A :class:`Ballot` is ``(round, node)``: unique per proposer because the node id is part of
it, totally ordered as a tuple. A node's output is a :class:`Ready`: the state to persist
(``persist``), the messages to send, and the values it newly learned as chosen. The caller
persists ``persist`` (and ``chosen``) before any of ``messages`` leaves: a promise or an
accepted reply states something about durable state, the same rule as raftkv.raft's Ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, Protocol


class Ballot(NamedTuple):
    round: int
    node: int


ZERO = Ballot(0, 0)
NOOP = b""  # the value a new Multi-Paxos leader puts in a gap nobody reported a value for


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int, /) -> int: ...


class MsgType(Enum):
    PREPARE = 1  # phase 1a: ballot; instance = the first instance it covers
    PROMISE = 2  # phase 1b: ballot; accepted = what the acceptor holds from that instance on
    ACCEPT = 3  # phase 2a: ballot, instance, value
    ACCEPTED = 4  # phase 2b: ballot, instance
    NACK = 5  # a refusal: ballot = the one refused, promised = the acceptor's promise
    CHOSEN = 6  # a learner's notice: instance, value
    LEARNED = 7  # a learner's acknowledgement of CHOSEN (Basic Paxos)
    HEARTBEAT = 8  # Multi-Paxos leader: ballot; instance = its highest chosen instance
    HEARTBEAT_RESP = 9  # missing = chosen instances it lacks; instance = highest it accepted


@dataclass(frozen=True, slots=True)
class Accepted:
    instance: int
    ballot: Ballot
    value: bytes


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    sender: int
    to: int
    ballot: Ballot = ZERO
    instance: int = 0
    value: bytes = b""
    promised: Ballot = ZERO
    accepted: tuple[Accepted, ...] = ()
    missing: tuple[int, ...] = ()


@dataclass(slots=True)
class Persist:
    """What changed in durable state; empty when nothing did."""

    promised: Ballot | None = None
    accepted: list[Accepted] = field(default_factory=list)
    max_round: int | None = None  # the highest round this node has used as a proposer

    def is_empty(self) -> bool:
        return self.promised is None and not self.accepted and self.max_round is None


@dataclass(slots=True)
class Ready:
    persist: Persist = field(default_factory=Persist)
    messages: list[Message] = field(default_factory=list)
    chosen: list[tuple[int, bytes]] = field(default_factory=list)  # newly learned, persisted

    def is_empty(self) -> bool:
        return self.persist.is_empty() and not self.messages and not self.chosen


def quorum(n: int) -> int:
    return n // 2 + 1
