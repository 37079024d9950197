"""Basic (single-decree) Paxos: one node is a proposer, an acceptor and a learner.

A proposer runs phase 1 (PREPARE, a majority of PROMISEs), then phase 2 (ACCEPT of the value
the promises force, a majority of ACCEPTEDs); then the value is chosen and it tells the
learners (CHOSEN, re-sent until each acknowledges with LEARNED). A refused, silent or
pre-empted round (its own acceptor saw a higher ballot) is given up and retried with a higher
ballot: at once without backoff (two proposers then pre-empt each other for ever: each one's
PREPARE reaches the acceptors before the other's ACCEPT, the duel the article describes), or
after a random wait whose window doubles with each failure, with backoff.

Pure and deterministic: inputs are ``propose``, ``step`` and ``tick``; all output is a
:class:`~raftkv.paxos.types.Ready` whose ``persist`` must be durable before its messages
leave. Messages to itself are handled at once, without the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from raftkv.paxos.acceptor import Acceptor
from raftkv.paxos.proposer import Rounds, pick_value, promise_quorum
from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import (
    ZERO,
    Accepted,
    Message,
    MsgType,
    RandomSource,
    Ready,
    quorum,
)

INSTANCE = 0


@dataclass(frozen=True)
class BasicConfig:
    id: int
    peers: tuple[int, ...]  # every node, itself included
    retry_ticks: int = 10  # a round that gets no decision in this many ticks is retried
    backoff: bool = True  # randomized, doubling wait before a retry
    backoff_max: int = 64
    resend_ticks: int = 5  # CHOSEN is re-sent this often to learners that did not ack


class Phase(Enum):
    IDLE = 0
    PREPARING = 1
    ACCEPTING = 2


class BasicNode:
    def __init__(self, cfg: BasicConfig, st: PaxosStorage, rand: RandomSource) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.rand = rand
        self.acceptor = Acceptor(cfg.id, st)
        self.rounds = Rounds(st)
        self.chosen: bytes | None = st.chosen.get(INSTANCE)
        self.value: bytes | None = None  # the client's value: volatile, a crash forgets it
        self.phase = Phase.IDLE
        self.ballot = ZERO
        self.promises: dict[int, tuple[Accepted, ...]] = {}
        self.accepts: set[int] = set()
        self.proposing = b""
        self.wait = 0  # ticks until the next retry (IDLE with a value: waiting to retry)
        self.failures = 0  # consecutive failed rounds (sets the backoff window)
        self.rounds_started = 0
        self.learned_by: set[int] = {cfg.id}
        self.resend = 0
        self._out = Ready()  # what the next ready() hands over

    # --- inputs ---------------------------------------------------------------------

    def propose(self, value: bytes) -> None:
        if self.chosen is not None or self.value is not None:
            return
        self.value = value
        self._start_round()

    def tick(self) -> None:
        if self.chosen is not None:
            self.resend -= 1
            if self.resend <= 0 and len(self.learned_by) < len(self.cfg.peers):
                self._announce()
            return
        if self.value is None:
            return
        self.wait -= 1
        if self.wait <= 0:
            if self.phase is not Phase.IDLE:
                self._round_failed()
            else:
                self._start_round()

    def step(self, m: Message) -> None:
        t = m.type
        if t is MsgType.PREPARE:
            self.rounds.see(m.ballot)
            self._send(self.acceptor.on_prepare(m, self._out.persist))
            self._tell_if_chosen(m.sender)
            self._preempted(m)
        elif t is MsgType.ACCEPT:
            self.rounds.see(m.ballot)
            self._send(self.acceptor.on_accept(m, self._out.persist))
            self._tell_if_chosen(m.sender)
            self._preempted(m)
        elif t is MsgType.PROMISE:
            self._on_promise(m)
        elif t is MsgType.ACCEPTED:
            self._on_accepted(m)
        elif t is MsgType.NACK:
            self.rounds.see(m.promised)
            if m.ballot == self.ballot and self.phase is not Phase.IDLE:
                self._round_failed()
        elif t is MsgType.CHOSEN:
            self._learn(m.value)
            self._send(Message(MsgType.LEARNED, self.id, m.sender))
        elif t is MsgType.LEARNED:
            self.learned_by.add(m.sender)

    def has_ready(self) -> bool:
        return not self._out.is_empty()

    def ready(self) -> Ready:
        rd, self._out = self._out, Ready()
        return rd

    # --- proposer -------------------------------------------------------------------

    def _start_round(self) -> None:
        self.ballot = self.rounds.next(self.id, self._out.persist)
        self.phase = Phase.PREPARING
        self.promises, self.accepts = {}, set()
        self.rounds_started += 1
        self.wait = self.cfg.retry_ticks
        for p in self.cfg.peers:
            self._send(Message(MsgType.PREPARE, self.id, p, self.ballot, INSTANCE))

    def _preempted(self, m: Message) -> None:
        # Our own acceptor now holds a higher ballot: this round has lost our vote, and a
        # competitor is running; give the round up (retry at once, or back off).
        if m.sender != self.id and self.phase is not Phase.IDLE and m.ballot > self.ballot:
            self._round_failed()

    def _round_failed(self) -> None:
        self.phase = Phase.IDLE
        self.failures += 1
        if self.chosen is not None:
            return
        if not self.cfg.backoff:
            self._start_round()
            return
        window = min(self.cfg.backoff_max, 2 ** min(self.failures, 16))
        self.wait = self.rand.randrange(1, window + 1)

    def _on_promise(self, m: Message) -> None:
        if self.phase is not Phase.PREPARING or m.ballot != self.ballot:
            return
        self.promises[m.sender] = m.accepted
        if not promise_quorum(len(self.promises), len(self.cfg.peers)):
            return
        forced = pick_value(list(self.promises.values()), INSTANCE)
        assert self.value is not None
        self.proposing = forced.value if forced is not None else self.value
        self.phase = Phase.ACCEPTING
        for p in self.cfg.peers:
            self._send(Message(MsgType.ACCEPT, self.id, p, self.ballot, INSTANCE,
                               self.proposing))

    def _on_accepted(self, m: Message) -> None:
        if self.phase is not Phase.ACCEPTING or m.ballot != self.ballot:
            return
        self.accepts.add(m.sender)
        if len(self.accepts) >= quorum(len(self.cfg.peers)):
            self.phase = Phase.IDLE
            self.failures = 0
            self._learn(self.proposing)
            self._announce()

    # --- learner --------------------------------------------------------------------

    def _learn(self, value: bytes) -> None:
        if self.chosen is None:
            self.chosen = value
            self._out.chosen.append((INSTANCE, value))
            self.phase = Phase.IDLE

    def _announce(self) -> None:
        assert self.chosen is not None
        self.resend = self.cfg.resend_ticks
        for p in self.cfg.peers:
            if p not in self.learned_by:
                self._send(Message(MsgType.CHOSEN, self.id, p, self.ballot, INSTANCE,
                                   self.chosen))

    def _tell_if_chosen(self, to: int) -> None:
        if self.chosen is not None and to != self.id:
            self._send(Message(MsgType.CHOSEN, self.id, to, ZERO, INSTANCE, self.chosen))

    def _send(self, m: Message) -> None:
        if m.to == self.id:
            self.step(m)
        else:
            self._out.messages.append(m)
