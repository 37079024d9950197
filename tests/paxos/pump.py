"""A hand-driven Paxos network for scenario tests: no randomness, a filter decides drops.

``flush()`` repeats until quiet: every node's Ready is persisted to its storage, then its
messages are queued; queued messages are delivered in order unless ``drop(m)`` says so.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from raftkv.paxos import BasicConfig, BasicNode, Message, MultiConfig, MultiNode, PaxosStorage

Node = BasicNode | MultiNode


class Pump:
    def __init__(self, kind: str, n: int = 3, **cfg: Any) -> None:
        self.kind = kind
        self.ids = tuple(range(1, n + 1))
        self.cfg = cfg
        self.storage = {i: PaxosStorage() for i in self.ids}
        self.nodes: dict[int, Node] = {}
        self.sent: list[Message] = []
        for i in self.ids:
            self.restart(i)

    def restart(self, i: int) -> Node:
        rng = random.Random(i)
        if self.kind == "basic":
            node: Node = BasicNode(BasicConfig(i, self.ids, **self.cfg),
                                   self.storage[i], rng)
        else:
            node = MultiNode(MultiConfig(i, self.ids, **self.cfg),
                             self.storage[i], rng)
        self.nodes[i] = node
        return node

    def crash(self, i: int) -> None:
        del self.nodes[i]

    def multi(self, i: int) -> MultiNode:
        node = self.nodes[i]
        assert isinstance(node, MultiNode)
        return node

    def basic(self, i: int) -> BasicNode:
        node = self.nodes[i]
        assert isinstance(node, BasicNode)
        return node

    def flush(self, drop: Callable[[Message], bool] = lambda m: False, limit: int = 10000) -> None:
        for _ in range(limit):
            queue: list[Message] = []
            for i, node in self.nodes.items():
                if node.has_ready():
                    rd = node.ready()
                    self.storage[i].apply(rd)
                    queue.extend(rd.messages)
            if not queue:
                return
            self.sent.extend(queue)
            for m in queue:
                dest = self.nodes.get(m.to)
                if dest is not None and not drop(m):
                    dest.step(m)
        raise AssertionError("the pump did not go quiet")
