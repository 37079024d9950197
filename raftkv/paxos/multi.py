"""Multi-Paxos: a log of Paxos instances with a distinguished proposer (the leader).

A node that hears no leader for its (randomized) election timeout runs phase 1 once for
every instance from its first unchosen one on: PREPARE(ballot, first). With a majority of
PROMISEs it leads: for each instance the promises mention it re-proposes the value accepted
at the highest ballot, and fills every gap nobody reported a value for with a no-op; after
that each new proposal goes straight to phase 2 (ACCEPT) in the next instance, no PREPARE.
An instance is chosen when a majority ACCEPTED it, independently of its neighbours, so
instances are decided out of order (the article's "gaps allowed"); the leader announces
each with CHOSEN, and heartbeats let followers ask for the chosen values they miss and
tell the leader of accepted instances beyond its log (which it fills with no-ops).

Invariants: as Basic Paxos per instance (see acceptor.py and proposer.py); a leader only
proposes with a ballot a majority promised for every instance from ``first`` on; a node
with a higher promise makes a leader or candidate step down (NACK). Pure and deterministic:
inputs ``propose``, ``step``, ``tick``; output a Ready whose ``persist`` is durable before
its messages leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from raftkv.paxos.acceptor import Acceptor
from raftkv.paxos.proposer import Rounds, pick_value, promise_quorum
from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import (
    NOOP,
    ZERO,
    Accepted,
    Ballot,
    Message,
    MsgType,
    RandomSource,
    Ready,
    quorum,
)

MAX_MISSING = 32  # chosen instances a follower asks for in one heartbeat response


@dataclass(frozen=True)
class MultiConfig:
    id: int
    peers: tuple[int, ...]  # every node, itself included
    election_tick: int = 10
    heartbeat_tick: int = 1
    retry_ticks: int = 6  # an ACCEPT unanswered this many ticks is sent again


class Role(Enum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2


@dataclass
class Pending:
    value: bytes
    acks: set[int] = field(default_factory=set)
    age: int = 0


class MultiNode:
    def __init__(self, cfg: MultiConfig, st: PaxosStorage, rand: RandomSource) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.rand = rand
        self.acceptor = Acceptor(cfg.id, st)
        self.rounds = Rounds(st)
        self.chosen: dict[int, bytes] = dict(st.chosen)
        self.first_unchosen = 0
        self._advance_first()
        self.role = Role.FOLLOWER
        self.ballot = ZERO
        self.leader_id = 0
        self.elapsed = 0
        self.timeout = self._random_timeout()
        self.hb_elapsed = 0
        self.prepare_first = 0
        self.promises: dict[int, tuple[Accepted, ...]] = {}
        self.pending: dict[int, Pending] = {}
        self.next_instance = 0
        self.campaigns = 0
        self.noops = 0
        self._out = Ready()  # what the next ready() hands over

    # --- inputs ---------------------------------------------------------------------

    def propose(self, value: bytes) -> int | None:
        """The instance the value goes into, or None when this node does not lead."""
        if self.role is not Role.LEADER:
            return None
        i = self.next_instance
        self.next_instance += 1
        self._issue(i, value)
        return i

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self.hb_elapsed += 1
            if self.hb_elapsed >= self.cfg.heartbeat_tick:
                self.hb_elapsed = 0
                self._heartbeat()
            for i, p in list(self.pending.items()):
                p.age += 1
                if p.age >= self.cfg.retry_ticks:
                    p.age = 0
                    for peer in self.cfg.peers:
                        if peer not in p.acks:
                            self._send(Message(MsgType.ACCEPT, self.id, peer, self.ballot, i,
                                               p.value))
            return
        self.elapsed += 1
        if self.elapsed >= self.timeout:
            self.campaign()

    def campaign(self) -> None:
        """Phase 1 for every instance from the first unchosen one on."""
        self._become(Role.CANDIDATE)
        self.ballot = self.rounds.next(self.id, self._out.persist)
        self.campaigns += 1
        self.promises = {}
        self.prepare_first = self.first_unchosen
        for p in self.cfg.peers:
            self._send(Message(MsgType.PREPARE, self.id, p, self.ballot, self.prepare_first))

    def step(self, m: Message) -> None:
        t = m.type
        if t is MsgType.PREPARE:
            self.rounds.see(m.ballot)
            reply = self.acceptor.on_prepare(m, self._out.persist)
            if reply.type is MsgType.PROMISE and m.sender != self.id:
                self._yield_to(m.ballot)
                self.elapsed = 0
            self._send(reply)
        elif t is MsgType.ACCEPT:
            self.rounds.see(m.ballot)
            reply = self.acceptor.on_accept(m, self._out.persist)
            if reply.type is MsgType.ACCEPTED and m.sender != self.id:
                self._heard_leader(m.ballot)
            self._send(reply)
        elif t is MsgType.HEARTBEAT:
            self._on_heartbeat(m)
        elif t is MsgType.HEARTBEAT_RESP:
            self._on_heartbeat_resp(m)
        elif t is MsgType.PROMISE:
            self._on_promise(m)
        elif t is MsgType.ACCEPTED:
            self._on_accepted(m)
        elif t is MsgType.NACK:
            self.rounds.see(m.promised)
            if m.ballot == self.ballot and m.promised > self.ballot:
                self._become(Role.FOLLOWER)
        elif t is MsgType.CHOSEN:
            self._learn(m.instance, m.value)

    def has_ready(self) -> bool:
        return not self._out.is_empty()

    def ready(self) -> Ready:
        rd, self._out = self._out, Ready()
        return rd

    # --- leadership -------------------------------------------------------------------

    def _random_timeout(self) -> int:
        return self.cfg.election_tick + self.rand.randrange(0, self.cfg.election_tick)

    def _become(self, role: Role) -> None:
        self.role = role
        self.elapsed = 0
        self.timeout = self._random_timeout()
        if role is not Role.LEADER:
            self.pending = {}

    def _yield_to(self, b: Ballot) -> None:
        if self.role is not Role.FOLLOWER and b > self.ballot:
            self._become(Role.FOLLOWER)

    def _heard_leader(self, b: Ballot) -> None:
        self._yield_to(b)
        if self.role is Role.FOLLOWER:
            self.elapsed = 0
            self.leader_id = b.node

    def _on_promise(self, m: Message) -> None:
        if self.role is not Role.CANDIDATE or m.ballot != self.ballot:
            return
        self.promises[m.sender] = m.accepted
        if promise_quorum(len(self.promises), len(self.cfg.peers)):
            self._lead()

    def _lead(self) -> None:
        self._become(Role.LEADER)
        self.leader_id = self.id
        held = list(self.promises.values())
        top = max((a.instance for h in held for a in h), default=self.prepare_first - 1)
        top = max(top, max(self.chosen, default=-1))
        for i in range(self.prepare_first, top + 1):
            if i in self.chosen:
                continue
            forced = pick_value(held, i)
            if forced is None:
                self.noops += 1
            self._issue(i, forced.value if forced is not None else NOOP)
        self.next_instance = top + 1
        self._heartbeat()

    def _issue(self, i: int, value: bytes) -> None:
        self.pending[i] = Pending(value)
        for p in self.cfg.peers:
            self._send(Message(MsgType.ACCEPT, self.id, p, self.ballot, i, value))

    def _on_accepted(self, m: Message) -> None:
        if self.role is not Role.LEADER or m.ballot != self.ballot:
            return
        p = self.pending.get(m.instance)
        if p is None:
            return
        p.acks.add(m.sender)
        if len(p.acks) >= quorum(len(self.cfg.peers)):
            del self.pending[m.instance]
            self._learn(m.instance, p.value)
            for peer in self.cfg.peers:
                if peer != self.id:
                    self._send(Message(MsgType.CHOSEN, self.id, peer, self.ballot,
                                       m.instance, p.value))

    def _heartbeat(self) -> None:
        top = max(self.chosen, default=-1)
        for p in self.cfg.peers:
            if p != self.id:
                self._send(Message(MsgType.HEARTBEAT, self.id, p, self.ballot, top))

    def _on_heartbeat(self, m: Message) -> None:
        if m.ballot < self.acceptor.promised:
            self._send(Message(MsgType.NACK, self.id, m.sender, m.ballot,
                               promised=self.acceptor.promised))
            return
        self._heard_leader(m.ballot)
        missing = tuple(i for i in range(self.first_unchosen, m.instance + 1)
                        if i not in self.chosen)[:MAX_MISSING]
        self._send(Message(MsgType.HEARTBEAT_RESP, self.id, m.sender, m.ballot,
                           self.acceptor.highest_accepted(), missing=missing))

    def _on_heartbeat_resp(self, m: Message) -> None:
        if self.role is not Role.LEADER or m.ballot != self.ballot:
            return
        for i in m.missing:
            if i in self.chosen:
                self._send(Message(MsgType.CHOSEN, self.id, m.sender, self.ballot, i,
                                   self.chosen[i]))
        while self.next_instance <= m.instance:  # accepted beyond our log: fill with no-ops
            self.noops += 1
            self._issue(self.next_instance, NOOP)
            self.next_instance += 1

    # --- learner --------------------------------------------------------------------

    def _learn(self, i: int, value: bytes) -> None:
        if i in self.chosen:
            return
        self.chosen[i] = value
        self._out.chosen.append((i, value))
        self._advance_first()

    def _advance_first(self) -> None:
        while self.first_unchosen in self.chosen:
            self.first_unchosen += 1

    def _send(self, m: Message) -> None:
        if m.to == self.id:
            self.step(m)
        else:
            self._out.messages.append(m)
