"""The seeded network and crash model every consensus simulation runs on (Raft and Paxos).

One ``random.Random`` drives everything: :class:`SimNet` drops, duplicates, delays and
reorders messages and cuts links (symmetric partitions, one-way cuts); :class:`Faults`
crashes and restarts nodes, partitions the cluster, isolates the leader, heals, and changes
the network's rates. The protocol stays outside: messages only need ``sender`` and ``to``,
nodes only ``up``, ``crash()`` and ``start()``, where ``crash()`` must lose everything its
node had not persisted (that is the crash model; each protocol's node implements it over its
own storage) and ``start()`` rebuilds from what was. :func:`receivers` and
:func:`lockstep_round` are the delivery and the round every cluster harness steps the same
way (tick every node, handle Readies, then up to ``DELIVERY_PASSES`` passes of delivering
due messages, each followed by Readies).

Invariant: the order in which the model draws from the rng is part of every seed's meaning.
Raft's seeds were recorded before this module existed (``tests/raft/test_sim_replay_pinned.py``
pins their traces), so any change to the order or number of draws breaks replay.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, Protocol, TypeVar


class Addressed(Protocol):
    @property
    def sender(self) -> int: ...

    @property
    def to(self) -> int: ...


class Crashable(Protocol):
    @property
    def up(self) -> bool: ...

    def crash(self) -> None: ...

    def start(self) -> None: ...


M = TypeVar("M", bound=Addressed)
N = TypeVar("N")
N_co = TypeVar("N_co", covariant=True)
DELIVERY_PASSES = 8  # passes of delivery per round (part of every seed's meaning)


class Hosting(Protocol[N_co]):
    """A harness's slot for a node: ``node`` is None while it is down."""

    @property
    def node(self) -> N_co | None: ...


class Ticking(Protocol):
    def tick(self) -> None: ...


def receivers(msgs: Iterable[M], blocked: Callable[[M], bool],
              hosts: Mapping[int, Hosting[N]]) -> Iterator[tuple[M, N]]:
    """Each message that reaches a node (not blocked by the network, addressed to a node
    that is up), with that node, in order."""
    for m in msgs:
        if blocked(m):
            continue
        host = hosts.get(m.to)
        if host is not None and host.node is not None:
            yield m, host.node


def lockstep_round(net: SimNet[M], hosts: Mapping[int, Hosting[Ticking]],
                   process_readies: Callable[[], None],
                   deliver_due: Callable[[], bool]) -> None:
    """One tick of a cluster: tick every up node, handle Readies, then up to
    ``DELIVERY_PASSES`` passes of delivering due messages (``deliver_due``: False when none
    were due), each followed by Readies; then the network's clock moves on."""
    for h in hosts.values():
        if h.node is not None:
            h.node.tick()
    process_readies()
    for _ in range(DELIVERY_PASSES):
        if not deliver_due():
            break
        process_readies()
    net.now += 1


class SimNet(Generic[M]):
    """Messages in flight with a due tick; faults apply at send (drop, dup, delay) and at
    delivery (reorder, cut links)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 0
        self.inflight: list[tuple[int, int, M]] = []  # (due tick, seq, msg)
        self.seq = 0
        self.cut: set[tuple[int, int]] = set()  # (from, to) links that drop everything
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.max_delay = 2
        self.faults = True  # False after healing: no drops or dups, delays of 0-1 ticks
        self.fixed_delay: int | None = None  # set: every copy takes exactly this many ticks
        self.sent = 0  # messages handed to the network (before drops), for measurements

    def send(self, msgs: Iterable[M]) -> None:
        rng = self.rng
        for m in msgs:
            self.sent += 1
            if self.faults and rng.random() < self.drop_rate:
                continue
            copies = 2 if self.faults and rng.random() < self.dup_rate else 1
            for _ in range(copies):
                self.seq += 1
                if self.fixed_delay is not None:
                    delay = self.fixed_delay
                elif self.faults:
                    delay = rng.randint(0, self.max_delay)
                else:
                    delay = rng.randint(0, 1)
                self.inflight.append((self.now + delay, self.seq, m))

    def take_due(self) -> list[M] | None:
        """The messages due now, shuffled (None when none is due); the caller skips the
        :meth:`blocked` ones at delivery."""
        due = [x for x in self.inflight if x[0] <= self.now]
        if not due:
            return None
        self.inflight = [x for x in self.inflight if x[0] > self.now]
        self.rng.shuffle(due)  # reordering
        return [m for _, _, m in due]

    def blocked(self, m: M) -> bool:
        return (m.sender, m.to) in self.cut

    def split(self, ids: list[int]) -> None:
        """Cut the cluster in two random groups (both directions)."""
        rng = self.rng
        ids = list(ids)
        rng.shuffle(ids)
        k = rng.randint(1, max(1, len(ids) // 2))
        a, b = ids[:k], ids[k:]
        for x in a:
            for y in b:
                self.cut.add((x, y))
                self.cut.add((y, x))

    def isolate(self, node: int, ids: list[int]) -> None:
        """Cut ``node`` off; each return link is cut with probability 1/2 (one-way: it hears,
        but is not heard)."""
        for o in ids:
            if o != node:
                self.cut.add((node, o))
                if self.rng.random() < 0.5:
                    self.cut.add((o, node))

    def reshape(self) -> None:
        rng = self.rng
        self.drop_rate = rng.choice([0.0, 0.0, 0.05, 0.2])
        self.dup_rate = rng.choice([0.0, 0.05, 0.1])
        self.max_delay = rng.choice([0, 2, 5])


class Faults:
    """Node and link faults, drawn from the network's rng.

    ``leader`` names the node a protocol currently treats as its leader (or None); leader
    crashes and leader isolation aim at it.
    """

    def __init__(self, net: SimNet[M], nodes: Mapping[int, Crashable],
                 leader: Callable[[], int | None], counts: Counter[str]) -> None:
        self.net: SimNet[M] = net
        self.rng = net.rng
        self.nodes = nodes
        self.leader = leader
        self.counts = counts

    def inject(self) -> None:
        rng, nodes, net = self.rng, self.nodes, self.net
        roll = rng.random()
        up = [i for i, n in nodes.items() if n.up]
        down = [i for i, n in nodes.items() if not n.up]
        if roll < 0.2 and len(up) > 1:
            victim = rng.choice(up)
            lead = self.leader()
            if lead is not None and rng.random() < 0.5:
                victim = lead
            nodes[victim].crash()
            self.counts["crashes"] += 1
        elif roll < 0.5 and down:
            nodes[rng.choice(down)].start()
        elif roll < 0.6:
            net.split(sorted(nodes))
        elif roll < 0.7:
            lead = self.leader()
            if lead is not None:
                net.isolate(lead, sorted(nodes))
        elif roll < 0.8 and net.cut:
            net.cut.clear()
            self.counts["partitions_healed"] += 1
        else:
            net.reshape()

    def churn(self) -> None:
        """Leaders crash soon after taking proposals; crashed nodes come back quickly."""
        rng, nodes = self.rng, self.nodes
        lead = self.leader()
        if lead is not None and rng.random() < 0.04:
            nodes[lead].crash()
            self.counts["crashes"] += 1
        down = [n for n in nodes.values() if not n.up]
        if down and rng.random() < 0.15:
            rng.choice(down).start()
