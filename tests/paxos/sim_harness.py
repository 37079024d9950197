"""Randomized, seeded simulation of Basic and Multi-Paxos under faults, checked every step.

One seed fixes everything: the protocol (Basic Paxos for seeds = 3 mod 4, Multi-Paxos
otherwise), the cluster size (3, 5, 7 by seed mod 3), the proposers and their values, and
``raftkv.simnet``'s network (drops, duplicates, delays, reordering, partitions, one-way cuts)
and crashes that lose everything unpersisted. After every Ready of every node the
:class:`Checker` asserts, each under its name (the name starts the failure message):

- ``one value per instance``: the acceptors' durable acceptances never give two values a
  majority at one instance (a value is chosen when a majority accepted it in one ballot);
- ``proposed``: every chosen value was proposed by a client (or is a leader's no-op);
- ``learners agree``: no two learners learn different values for an instance;
- ``durable choice``: a learner learns only a value a majority has durably accepted;
- ``unique ballot``: a ballot belongs to its proposer, is never used by two incarnations
  of it (a restart must not reuse a round), and never carries two values to one instance.

After the run the network heals and every node restarts: every instance up to the highest
one any acceptor accepted, and fresh proposals, must be decided at every node within a
bound (``liveness``). Replay a seed with ``python -m tests.paxos.sim_harness --seed N``.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from raftkv.paxos import NOOP, Ballot, BasicConfig, BasicNode, MsgType, MultiConfig, MultiNode
from raftkv.paxos.sim import PaxosCluster, SimPaxosNode
from raftkv.paxos.types import Ready, quorum


class SafetyViolation(AssertionError):
    pass


CHECKS = ("one value per instance", "proposed", "learners agree", "durable choice",
          "unique ballot")  # liveness, checked after healing, cannot be switched off
COUNTERS = ("crashes", "partitions_healed", "chosen", "out_of_order", "campaigns", "noops",
            "noops_chosen", "ballots", "nacks", "forced")


@dataclass
class Coverage:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: Coverage) -> None:
        self.counts.update(other.counts)


class Checker:
    """Paxos's safety properties, checked on every Ready before it is persisted."""

    def __init__(self, n: int, cov: Coverage, off: frozenset[str] = frozenset()) -> None:
        self.off = off  # checks switched off (to show what else a mutant breaks)
        self.q = quorum(n)
        self.cov = cov
        self.tick = 0
        self.proposed: set[bytes] = {NOOP}
        self.votes: dict[tuple[int, Ballot], dict[int, bytes]] = {}
        self.chosen: dict[int, bytes] = {}  # truth: from durable acceptances
        self.learned: dict[int, bytes] = {}
        self.learners: dict[int, set[int]] = {}  # node -> instances learned
        self.ballot_owner: dict[Ballot, tuple[int, int]] = {}  # ballot -> (node, incarnation)
        self.ballot_value: dict[tuple[Ballot, int], bytes] = {}
        self.max_accepted = -1
        self.own: dict[int, bytes] = {}  # Basic Paxos: the value each proposer was given
        self.forced: set[Ballot] = set()  # ballots whose phase 2 carried another's value

    def fail(self, check: str, what: str) -> None:
        if check in self.off:
            return
        raise SafetyViolation(f"{check}: tick {self.tick}: {what}")

    def on_ready(self, n: SimPaxosNode, rd: Ready) -> None:
        for a in rd.persist.accepted:
            self.max_accepted = max(self.max_accepted, a.instance)
            votes = self.votes.setdefault((a.instance, a.ballot), {})
            votes[n.id] = a.value
            if len(set(votes.values())) > 1:
                self.fail("unique ballot", f"ballot {tuple(a.ballot)} was accepted with two "
                          f"values at instance {a.instance}")
            if len(votes) >= self.q:
                self._chosen(a.instance, a.value, a.ballot)
        for i, v in rd.chosen:
            other = self.learned.setdefault(i, v)
            if other != v:
                self.fail("learners agree", f"node {n.id} learned {v!r} at instance {i}, "
                          f"another learner {other!r}")
            if self.chosen.get(i) != v:
                self.fail("durable choice", f"node {n.id} learned {v!r} at instance {i}, but "
                          f"no majority durably accepted it (chosen: {self.chosen.get(i)!r})")
            mine = self.learners.setdefault(n.id, set())
            if i > 0 and i - 1 not in mine and i not in mine:
                self.cov.counts["out_of_order"] += 1
            mine.add(i)
        for m in rd.messages:
            if m.type is MsgType.NACK:
                self.cov.counts["nacks"] += 1
            if m.type not in (MsgType.PREPARE, MsgType.ACCEPT):
                continue
            if m.ballot.node != n.id:
                self.fail("unique ballot", f"node {n.id} sent {m.type.name} with ballot "
                          f"{tuple(m.ballot)} of node {m.ballot.node}")
            owner = self.ballot_owner.setdefault(m.ballot, (n.id, n.restarts))
            if owner != (n.id, n.restarts):
                self.fail("unique ballot", f"node {n.id} reused ballot {tuple(m.ballot)} "
                          f"after a restart")
            if m.type is MsgType.ACCEPT:
                own = self.own.get(n.id)
                if own is not None and m.value != own:
                    self.forced.add(m.ballot)
                    self.cov.counts["forced"] = len(self.forced)
                v = self.ballot_value.setdefault((m.ballot, m.instance), m.value)
                if v != m.value:
                    self.fail("unique ballot", f"ballot {tuple(m.ballot)} carried two values "
                              f"to instance {m.instance}")

    def _chosen(self, i: int, v: bytes, b: Ballot) -> None:
        got = self.chosen.setdefault(i, v)
        if got != v:
            self.fail("one value per instance", f"instance {i}: {v!r} chosen at ballot "
                      f"{tuple(b)}, {got!r} was chosen before")
        if v not in self.proposed:
            self.fail("proposed", f"instance {i}: {v!r} was chosen but never proposed")


@dataclass
class SimParams:
    seed: int
    nodes: int = 3
    ticks: int = 600
    proposals: int = 60
    kind: str = "multi"
    off: frozenset[str] = frozenset()


@dataclass
class SimResult:
    seed: int
    kind: str
    nodes: int
    cov: Coverage
    decided: int
    heal_ticks: int


class Simulation:
    def __init__(self, p: SimParams) -> None:
        self.p = p
        self.rng = rng = random.Random(p.seed)
        ids = list(range(1, p.nodes + 1))
        self.cluster = PaxosCluster(
            ids, p.kind, rng,
            basic=BasicConfig(0, (), retry_ticks=rng.choice([6, 12]), backoff=True),
            multi=MultiConfig(0, (), election_tick=15, heartbeat_tick=3,
                              retry_ticks=rng.choice([4, 8])))
        self.net = self.cluster.net
        self.cov = Coverage(self.cluster.counts)
        self.checker = Checker(p.nodes, self.cov, p.off)
        self.cluster.hook = self.checker.on_ready
        self.churn = rng.random() < 0.3
        if self.churn:
            self.net.drop_rate, self.net.max_delay = 0.1, 6
        self.proposers = rng.sample(ids, k=min(len(ids), rng.choice([1, 2, 3])))
        self.proposed = 0

    def round(self) -> None:
        self.checker.tick = self.net.now
        self.cluster.round()

    def propose(self, target: int | None = None) -> None:
        rng = self.rng
        c = self.cluster
        up = [n for n in c.nodes.values() if n.node is not None]
        if not up:
            return
        self.proposed += 1
        value = f"s{self.p.seed}-p{self.proposed}".encode()
        self.checker.proposed.add(value)
        if self.p.kind == "basic":
            cands = [n for n in up if n.id in self.proposers]
            if target is not None:
                cands = [c.nodes[target]] if c.nodes[target].node is not None else []
            if cands:
                node = rng.choice(cands).node
                assert isinstance(node, BasicNode)
                if node.value is None and node.chosen is None:
                    self.checker.own[node.id] = value
                node.propose(value)
            return
        lead = c.leader()
        pick = lead if lead is not None and rng.random() < 0.7 else rng.choice(up).node
        assert isinstance(pick, MultiNode)
        pick.propose(value)

    def run(self) -> SimResult:
        p, rng = self.p, self.rng
        rate = p.proposals / p.ticks
        basic = p.kind == "basic"
        # Basic Paxos decides one value: its proposers all start within a few ticks of each
        # other, under faults twice as frequent, so that they contend.
        duel_at = rng.randint(0, 10)
        for t in range(p.ticks):
            if self.churn:
                self.cluster.faults.churn()
            elif rng.random() < (0.04 if basic else 0.02):
                self.cluster.faults.inject()
            if basic:
                if duel_at <= t < duel_at + 3:
                    for i in self.proposers:
                        self.propose(i)
            elif rng.random() < rate * 1.2 and self.proposed < p.proposals:
                self.propose()
            self.round()
        heal = self.heal_and_check()
        self._count()
        return SimResult(p.seed, p.kind, p.nodes, self.cov, len(self.checker.chosen), heal)

    def _count(self) -> None:
        cnt = self.cov.counts
        cnt["chosen"] += len(self.checker.chosen)
        for n in self.cluster.nodes.values():
            if isinstance(n.node, MultiNode):
                cnt["campaigns"] += n.node.campaigns
                cnt["noops"] += n.node.noops
        cnt["ballots"] += len(self.checker.ballot_owner)
        cnt["noops_chosen"] += sum(1 for v in self.checker.chosen.values() if v == NOOP)

    def heal_and_check(self, bound: int = 600) -> int:
        """Heal everything; every instance up to the last one accepted gets decided."""
        net, c = self.net, self.cluster
        net.cut.clear()
        self.cov.counts["partitions_healed"] += 1
        net.faults = False
        for n in c.nodes.values():
            n.start()
        start = net.now
        finals: list[bytes] = []
        last_try = -999
        while True:
            if self._decided(finals):
                return net.now - start
            if net.now - start >= bound:
                self._fail_liveness(bound)
            self.round()
            if net.now - last_try >= 40:
                last_try = net.now
                if self.p.kind == "basic":
                    self.propose(self.rng.choice(sorted(c.nodes)))
                else:
                    lead = c.leader()
                    if lead is not None and len(finals) < 3:
                        v = f"final-{self.p.seed}-{len(finals)}".encode()
                        self.checker.proposed.add(v)
                        if lead.propose(v) is not None:
                            finals.append(v)

    def _decided(self, finals: list[bytes]) -> bool:
        top = self.checker.max_accepted
        for n in self.cluster.nodes.values():
            node = n.node
            if isinstance(node, BasicNode):
                if node.chosen is None:
                    return False
            elif isinstance(node, MultiNode):
                if self.p.kind == "multi" and len(finals) < 3:
                    return False
                if any(i not in node.chosen for i in range(top + 1)):
                    return False
        return True

    def _fail_liveness(self, bound: int) -> None:
        top = self.checker.max_accepted
        states = {}
        for i, n in self.cluster.nodes.items():
            x = n.node
            if isinstance(x, MultiNode):
                states[i] = (x.role.name, x.first_unchosen)
            elif isinstance(x, BasicNode):
                states[i] = ("chosen" if x.chosen is not None else x.phase.name, 0)
        raise SafetyViolation(f"liveness: {bound} ticks after healing not every instance up "
                              f"to {top} is decided everywhere; nodes {states}")


def params_for(seed: int, ticks: int = 600, proposals: int = 60,
               off: frozenset[str] = frozenset()) -> SimParams:
    kind = "basic" if seed % 4 == 3 else "multi"
    return SimParams(seed, (3, 5, 7)[seed % 3], ticks, proposals, kind, off)


def run_seed(seed: int, ticks: int = 600, proposals: int = 60,
             off: frozenset[str] = frozenset()) -> SimResult:
    return Simulation(params_for(seed, ticks, proposals, off)).run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Replay seeds of the Paxos simulation.")
    ap.add_argument("--seed", type=int, required=True, help="the (first) seed")
    ap.add_argument("--count", type=int, default=1, help="run this many seeds from --seed")
    ap.add_argument("--ticks", type=int, default=600)
    ap.add_argument("--proposals", type=int, default=60)
    ap.add_argument("--kind", choices=("basic", "multi"), default=None,
                    help="run only the seeds (of the range) that run this protocol")
    ap.add_argument("--off", action="append", default=[], choices=CHECKS,
                    help="switch a check off (repeatable), to see what else fails")
    args = ap.parse_args(argv)
    off = frozenset(args.off)
    for seed in range(args.seed, args.seed + args.count):
        if args.kind is not None and params_for(seed).kind != args.kind:
            continue
        try:
            res = run_seed(seed, args.ticks, args.proposals, off)
        except SafetyViolation as exc:
            print(f"seed {seed}: FAILED: {exc}", file=sys.stderr)
            print(f"replay: python -m tests.paxos.sim_harness --seed {seed} --ticks {args.ticks} "
                  f"--proposals {args.proposals}", file=sys.stderr)
            return 1
        print(f"seed {res.seed}: ok, {res.kind} paxos, {res.nodes} nodes, {res.decided} "
              f"instances decided, healed in {res.heal_ticks} ticks, "
              f"{dict(sorted(res.cov.counts.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
