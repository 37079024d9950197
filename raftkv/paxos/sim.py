"""A Paxos cluster on the shared seeded network and crash model (``raftkv.simnet``).

Each :class:`SimPaxosNode` drives a Basic or Multi-Paxos node in the prescribed order:
take its Ready, let the hook (a checker) see it, persist it to its :class:`PaxosStorage`
(the node's disk), then hand the messages to the network. ``crash()`` drops the node object
with everything it had not persisted (unsent messages, proposer and leader state, a client's
value); ``start()`` rebuilds it from storage. :class:`PaxosCluster` steps all nodes in
lockstep rounds exactly as the Raft harness does (``raftkv.simnet.lockstep_round``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from raftkv.paxos.basic import BasicConfig, BasicNode
from raftkv.paxos.multi import MultiConfig, MultiNode, Role
from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import Message, Ready
from raftkv.simnet import Faults, Hosting, SimNet, lockstep_round, receivers

PaxosNode = BasicNode | MultiNode
ReadyHook = Callable[["SimPaxosNode", Ready], None]


@dataclass
class SimPaxosNode:
    id: int
    make: Callable[[PaxosStorage, random.Random], PaxosNode]
    rng: random.Random
    storage: PaxosStorage = field(default_factory=PaxosStorage)
    node: PaxosNode | None = None
    restarts: int = 0

    @property
    def up(self) -> bool:
        return self.node is not None

    def start(self) -> None:
        if self.node is None:
            self.node = self.make(self.storage, self.rng)
            self.restarts += 1

    def crash(self) -> None:
        self.node = None

    def handle_ready(self, hook: ReadyHook | None) -> list[Message]:
        node = self.node
        if node is None or not node.has_ready():
            return []
        rd = node.ready()
        if hook is not None:
            hook(self, rd)
        self.storage.apply(rd)  # 1. persist ...
        return rd.messages  # 2. ... then send


class PaxosCluster:
    """N Paxos nodes (all ``kind``: "basic" or "multi") on one seeded network."""

    def __init__(self, ids: list[int], kind: str, rng: random.Random,
                 basic: BasicConfig | None = None, multi: MultiConfig | None = None) -> None:
        self.kind = kind
        self.rng = rng
        self.net: SimNet[Message] = SimNet(rng)
        self.nodes: dict[int, SimPaxosNode] = {}
        self.hook: ReadyHook | None = None
        self.counts: Counter[str] = Counter()
        peers = tuple(ids)
        for i in ids:
            self.nodes[i] = SimPaxosNode(i, self._maker(i, peers, basic, multi),
                                         random.Random(rng.randrange(1 << 30)))
            self.nodes[i].start()
        self.faults = Faults(self.net, self.nodes, self.leader_id, self.counts)

    def _maker(self, i: int, peers: tuple[int, ...], basic: BasicConfig | None,
               multi: MultiConfig | None) -> Callable[[PaxosStorage, random.Random], PaxosNode]:
        if self.kind == "basic":
            b = basic or BasicConfig(0, ())
            bc = BasicConfig(i, peers, b.retry_ticks, b.backoff, b.backoff_max, b.resend_ticks)
            return lambda st, rng: BasicNode(bc, st, rng)
        m = multi or MultiConfig(0, ())
        mc = MultiConfig(i, peers, m.election_tick, m.heartbeat_tick, m.retry_ticks)
        return lambda st, rng: MultiNode(mc, st, rng)

    @property
    def now(self) -> int:
        return self.net.now

    def leader(self) -> MultiNode | None:
        """The up Multi-Paxos leader with the highest ballot (None for Basic Paxos)."""
        best: MultiNode | None = None
        for n in self.nodes.values():
            x = n.node
            if isinstance(x, MultiNode) and x.role is Role.LEADER and (
                    best is None or x.ballot > best.ballot):
                best = x
        return best

    def leader_id(self) -> int | None:
        lead = self.leader()
        return None if lead is None else lead.id

    def process_readies(self) -> None:
        for n in list(self.nodes.values()):
            self.net.send(n.handle_ready(self.hook))

    def deliver_due(self) -> bool:
        due = self.net.take_due()
        if due is None:
            return False
        hosts: Mapping[int, Hosting[PaxosNode]] = self.nodes
        for m, node in receivers(due, self.net.blocked, hosts):
            node.step(m)
            self.counts["delivered"] += 1
        return True

    def round(self) -> None:
        lockstep_round(self.net, self.nodes, self.process_readies, self.deliver_due)
