"""The clusters ``raftkv.paxos.compare`` measures: Raft and Paxos behind one interface.

A :class:`Driver` steps one protocol's cluster on its own :class:`~raftkv.simnet.SimNet`
in the lockstep rounds every simulation here uses (tick, Readies, up to eight delivery
passes), counts every message a node hands to the network by type, and records the tick
each value is first committed (Raft: applied anywhere; Paxos: learned anywhere). Each node
persists its Ready before its messages are sent (raftkv.simulation's SimNode for Raft,
raftkv.paxos.sim's SimPaxosNode for Paxos).
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from raftkv.paxos.basic import BasicConfig, BasicNode
from raftkv.paxos.multi import MultiConfig, MultiNode
from raftkv.paxos.sim import PaxosCluster, SimPaxosNode
from raftkv.paxos.types import Ballot, MsgType
from raftkv.paxos.types import Ready as PaxosReady
from raftkv.raft import Message as RaftMessage
from raftkv.raft import ProposalDropped, Ready
from raftkv.simnet import SimNet
from raftkv.simulation import SimCluster, SimConfig, SimNode

ELECTION_TICK = 10
HEARTBEAT_TICK = 3


class Driver:
    """One protocol's cluster on a SimNet, with the counters the scenarios read."""

    name = ""
    net: SimNet[Any]

    def __init__(self, first_index: int) -> None:
        self.sent: Counter[str] = Counter()  # message type -> messages handed to the network
        self.commit_tick: dict[bytes, int] = {}  # value -> tick it was first committed
        self.first_index = first_index
        self.decided: dict[int, set[int]] = {}  # node -> log positions it knows decided
        self.next_open: dict[int, int] = {}  # node -> its lowest position not yet decided
        self.out_of_order = 0  # positions decided at a node while a lower one was still open
        self.decisions = 0

    def _decide(self, node: int, index: int) -> None:
        done = self.decided.setdefault(node, set())
        if index in done:
            return
        nxt = self.next_open.get(node, self.first_index)
        self.decisions += 1
        if index > nxt:
            self.out_of_order += 1
        done.add(index)
        while nxt in done:
            nxt += 1
        self.next_open[node] = nxt

    @property
    def now(self) -> int:
        raise NotImplementedError

    def round(self) -> None:
        raise NotImplementedError

    def leader(self) -> int | None:
        raise NotImplementedError

    def propose(self, value: bytes) -> bool:
        raise NotImplementedError

    def crash(self, node: int) -> None:
        raise NotImplementedError

    def messages(self) -> int:
        return sum(self.sent.values())


class RaftDriver(Driver):
    name = "Raft"

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(first_index=1)
        self.rng = random.Random(seed)
        cfg = SimConfig(election_tick=ELECTION_TICK, heartbeat_tick=HEARTBEAT_TICK)
        self.cluster = SimCluster(list(range(1, n + 1)), cfg, seed=seed)
        self.net = SimNet[RaftMessage](self.rng)

    @property
    def now(self) -> int:
        return self.net.now

    def _hook(self, n: SimNode, rd: Ready) -> None:
        for m in rd.messages:
            self.sent[m.type.name] += 1
        for e in rd.committed_entries:
            self._decide(n.id, e.index)
            if e.data:
                self.commit_tick.setdefault(e.data, self.net.now)

    def _readies(self) -> None:
        for n in self.cluster.nodes.values():
            self.net.send(n.handle_ready(self._hook))

    def round(self) -> None:
        for n in self.cluster.nodes.values():
            if n.node is not None:
                n.node.tick()
        self._readies()
        for _ in range(8):
            due = self.net.take_due()
            if due is None:
                break
            for m in due:
                dest = self.cluster.nodes.get(m.to)
                if not self.net.blocked(m) and dest is not None and dest.node is not None:
                    dest.node.step(m)
            self._readies()
        self.net.now += 1

    def leader(self) -> int | None:
        lead = self.cluster.leader()
        return None if lead is None else lead.id

    def propose(self, value: bytes) -> bool:
        lead = self.cluster.leader()
        if lead is None or lead.node is None:
            return False
        with contextlib.suppress(ProposalDropped):
            lead.node.propose(value)
            return True
        return False

    def crash(self, node: int) -> None:
        self.cluster.nodes[node].crash()


class PaxosDriver(Driver):
    def __init__(self, n: int, seed: int, kind: str = "multi",
                 basic: BasicConfig | None = None) -> None:
        super().__init__(first_index=0)
        self.name = "Multi-Paxos" if kind == "multi" else "Basic Paxos"
        self.cluster = PaxosCluster(
            list(range(1, n + 1)), kind, random.Random(seed), basic=basic,
            multi=MultiConfig(0, (), ELECTION_TICK, HEARTBEAT_TICK, retry_ticks=6))
        self.cluster.hook = self._hook
        self.net = self.cluster.net
        self.ballots: set[Ballot] = set()

    @property
    def now(self) -> int:
        return self.net.now

    def _hook(self, n: SimPaxosNode, rd: PaxosReady) -> None:
        for m in rd.messages:
            self.sent[m.type.name] += 1
            if m.type is MsgType.PREPARE:
                self.ballots.add(m.ballot)
        for i, v in rd.chosen:
            self._decide(n.id, i)
            if v:
                self.commit_tick.setdefault(v, self.net.now)

    def round(self) -> None:
        self.cluster.round()

    def leader(self) -> int | None:
        return self.cluster.leader_id()

    def propose(self, value: bytes) -> bool:
        lead = self.cluster.leader()
        return lead is not None and lead.propose(value) is not None

    def crash(self, node: int) -> None:
        self.cluster.nodes[node].crash()

    def node(self, i: int) -> BasicNode | MultiNode | None:
        return self.cluster.nodes[i].node


def wait_for(d: Driver, cond: Callable[[], bool], bound: int) -> int:
    """Rounds until ``cond()`` holds; -1 if it did not within ``bound``."""
    for t in range(bound):
        if cond():
            return t
        d.round()
    return bound if cond() else -1
