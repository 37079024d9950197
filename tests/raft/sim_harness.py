"""Randomized, seeded simulation of a Raft cluster under faults, checking safety at every step.

One seed fixes everything: cluster size and settings, the network's drops, duplicates,
delays and reordering, partitions (symmetric, one-way, isolating the leader), crashes
that lose all unpersisted state, restarts, membership changes, proposals. After every
Ready of every node the :class:`Checker` asserts Raft's safety properties:

- Election Safety: at most one leader per term;
- Log Matching: an (index, term) pair names one entry, with one predecessor term;
- Leader Completeness: a new leader holds every entry committed so far;
- State Machine Safety: every node applies the same entry at a given index, so applied
  sequences are prefixes of one history, and nothing reported committed is replaced;
- the commit rule (§5.4.2): a leader's commit index only ever lands on an entry of its
  own term;
- a message of a stale term (append, snapshot, heartbeat) changes nothing at its receiver.

At the end the network heals and every node restarts: a leader must appear and fresh
proposals must commit and be applied everywhere within a bounded number of ticks.
Replay a seed with ``python -m tests.raft.sim_harness --seed N``. The network and the
crash/partition model are ``raftkv.simnet``'s, shared with the Paxos simulation.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
    EntryType,
    Message,
    MessageType,
    ProposalDropped,
    Ready,
    StateType,
)
from raftkv.simnet import Faults, SimNet, lockstep_round, receivers
from raftkv.simulation import SimCluster, SimConfig, SimNode


class SafetyViolation(AssertionError):
    pass


@dataclass
class Coverage:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: Coverage) -> None:
        self.counts.update(other.counts)


COUNTERS = (
    "elections",
    "prevote_rejections",
    "snapshots_sent",
    "conf_changes_applied",
    "leader_stepdowns",
    "partitions_healed",
    "crashes",
    "proposals_committed",
)


class Checker:
    """Raft's safety invariants, checked incrementally on every Ready."""

    def __init__(self, cov: Coverage) -> None:
        self.cov = cov
        self.leaders: dict[int, int] = {}  # term -> leader id
        self.entries: dict[tuple[int, int], tuple[bytes, int]] = {}  # (idx, term) -> data, prev
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.normal: set[int] = set()  # committed indexes holding a normal proposal
        self.bootstrap_entries = 0
        self.max_committed = 0
        self.was_leader: dict[int, bool] = {}
        self.commit_seen: dict[int, int] = {}  # node -> commit index in its last hard state
        self.tick = 0

    def fail(self, what: str) -> None:
        raise SafetyViolation(f"tick {self.tick}: {what}")

    def on_ready(self, n: SimNode, rd: Ready) -> None:
        node = n.node
        assert node is not None
        r = node.raft
        log = r.raft_log
        if rd.soft_state is not None:
            is_leader = rd.soft_state.state is StateType.LEADER
            if is_leader:
                self.cov.counts["elections"] += 1
                other = self.leaders.setdefault(r.term, n.id)
                if other != n.id:
                    self.fail(f"election safety: {other} and {n.id} both lead term {r.term}")
                self._check_leader_completeness(n)
            elif self.was_leader.get(n.id):
                self.cov.counts["leader_stepdowns"] += 1
            self.was_leader[n.id] = is_leader
        if not rd.hard_state.is_empty():
            before = self.commit_seen.get(n.id, 0)
            commit = rd.hard_state.commit
            if r.state is StateType.LEADER and commit > before and (
                    log.term_or_zero(commit) not in (0, r.term)):
                # Raft §5.4.2: a leader advances its commit index only onto an entry of its
                # own term (older entries are committed indirectly).
                self.fail(f"commit rule: leader {n.id} of term {r.term} committed index "
                          f"{commit} of term {log.term_or_zero(commit)}")
            self.commit_seen[n.id] = commit
        for e in rd.entries:
            prev = log.term_or_zero(e.index - 1)
            key = (e.index, e.term)
            seen = self.entries.get(key)
            if seen is None:
                self.entries[key] = (e.data, prev)
            elif seen[0] != e.data or (prev and seen[1] and prev != seen[1]):
                self.fail(f"log matching: node {n.id} has a different entry at {key}")
        for e in rd.committed_entries:
            got = self.committed.get(e.index)
            if got is None:
                self.committed[e.index] = (e.term, e.data)
                self.max_committed = max(self.max_committed, e.index)
                if e.type is EntryType.NORMAL and e.data:
                    self.cov.counts["proposals_committed"] += 1
                    self.normal.add(e.index)
                if e.type is EntryType.CONF_CHANGE and e.index > self.bootstrap_entries:
                    self.cov.counts["conf_changes_applied"] += 1
            elif got != (e.term, e.data):
                self.fail(
                    f"state machine safety: node {n.id} applies {e.term}/{e.index} but "
                    f"{got[0]}/{e.index} was committed before"
                )
        for m in rd.messages:
            if m.type is MessageType.PRE_VOTE_RESP and m.reject:
                self.cov.counts["prevote_rejections"] += 1
            elif m.type is MessageType.SNAP:
                self.cov.counts["snapshots_sent"] += 1

    def _check_leader_completeness(self, n: SimNode) -> None:
        assert n.node is not None
        log = n.node.raft.raft_log
        first = log.first_index()
        if log.last_index() < self.max_committed:
            self.fail(f"leader completeness: leader {n.id} lacks committed "
                      f"entries ({log.last_index()} < {self.max_committed})")
        for idx in range(max(first, 1), self.max_committed + 1):
            c = self.committed.get(idx)
            if c is not None and log.term_or_zero(idx) != c[0]:
                self.fail(f"leader completeness: leader {n.id} has term "
                          f"{log.term_or_zero(idx)} at committed index {idx} (want {c[0]})")

    def check_values(self, n: SimNode) -> None:
        """A node's state machine equals a prefix of the committed history."""
        want = [self.committed[i][1] for i in sorted(self.normal) if i <= n.applied_index]
        if n.values != want[: len(n.values)] or len(n.values) != len(want):
            self.fail(f"state machine safety: node {n.id} applied values diverge "
                      f"({len(n.values)} values vs {len(want)} committed up to "
                      f"{n.applied_index})")


@dataclass
class SimParams:
    seed: int
    nodes: int = 3
    ticks: int = 2000
    proposals: int = 200
    membership: bool = True


@dataclass
class SimResult:
    seed: int
    nodes: int
    cov: Coverage
    committed: int
    final_leader: int
    final_term: int
    heal_ticks: int


class Simulation:
    def __init__(self, p: SimParams) -> None:
        self.p = p
        self.rng = random.Random(p.seed)
        rng = self.rng
        self.cfg = SimConfig(
            election_tick=15,
            heartbeat_tick=3,
            pre_vote=rng.random() < 0.85,
            check_quorum=rng.random() < 0.85,
            max_size_per_msg=rng.choice([1, 200, 1 << 20]),
            max_inflight_msgs=rng.choice([1, 4, 64]),
            snapshot_every=rng.choice([0, 25, 60]),
            snapshot_keep=rng.choice([0, 3, 10]),
        )
        ids = list(range(1, p.nodes + 1))
        self.cluster = SimCluster(ids, self.cfg, seed=p.seed)
        self.cov = Coverage()
        self.checker = Checker(self.cov)
        self.checker.bootstrap_entries = p.nodes
        self.cluster.hook = self.checker.on_ready
        self.next_id = p.nodes + 1
        self.net: SimNet[Message] = SimNet(rng)
        self.faults = Faults(self.net, self.cluster.nodes, self._leader_id, self.cov.counts)
        self.proposed = 0
        # Churn (MIT 6.5840's TestFigure8Unreliable): leaders crash soon after taking
        # proposals, crashed members come back quickly, messages are slow and lossy, so
        # entries of old terms often reach a majority under a newer leader.
        self.churn = rng.random() < 0.3
        if self.churn:
            self.net.drop_rate, self.net.max_delay = 0.1, 6

    @property
    def now(self) -> int:
        return self.net.now

    def _leader_id(self) -> int | None:
        lead = self.leader()
        return None if lead is None else lead.id

    # --- network (raftkv.simnet) -----------------------------------------------------

    def deliver_due(self) -> bool:
        due = self.net.take_due()
        if due is None:
            return False
        for m, node in receivers(due, self.net.blocked, self.cluster.nodes):
            r = node.raft
            stale = 0 < m.term < r.term and m.type in (
                MessageType.APP, MessageType.SNAP, MessageType.HEARTBEAT)
            if stale:
                seen = (r.raft_log.last_index(), r.raft_log.last_term(), r.raft_log.committed,
                        r.lead, r.term)
            node.step(m)
            if stale and seen != (r.raft_log.last_index(), r.raft_log.last_term(),
                                  r.raft_log.committed, r.lead, r.term):
                self.checker.fail(f"stale message: {m.type.name} of term {m.term} from "
                                  f"{m.sender} changed node {m.to} (term {r.term})")
        return True

    def process_readies(self) -> None:
        for n in list(self.cluster.nodes.values()):
            self.net.send(n.handle_ready(self.checker.on_ready))

    def round(self) -> None:
        self.checker.tick = self.now
        lockstep_round(self.net, self.cluster.nodes, self.process_readies, self.deliver_due)

    # --- faults and workload -------------------------------------------------------

    def leader(self) -> SimNode | None:
        return self.cluster.leader()

    def propose(self) -> None:
        rng = self.rng
        up = [n for n in self.cluster.nodes.values() if n.up]
        if not up:
            return
        lead = self.leader()
        target = lead if lead is not None and rng.random() < 0.7 else rng.choice(up)
        assert target.node is not None
        self.proposed += 1
        data = f"s{self.p.seed}-p{self.proposed}".encode()
        with contextlib.suppress(ProposalDropped):
            target.node.propose(data)

    def change_membership(self) -> None:
        lead = self.leader()
        if lead is None or lead.node is None:
            return
        rng = self.rng
        cs = lead.node.raft.prs.conf_state()
        choice = rng.random()
        cc: ConfChange | None = None
        if cs.learners and choice < 0.5:
            cc = ConfChange(ConfChangeType.ADD_NODE, rng.choice(cs.learners))
        elif choice < 0.75 and len(cs.voters) + len(cs.learners) < 7:
            new = self.next_id
            cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, new)
        elif len(cs.voters) > 3:
            cc = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(cs.voters))
        if cc is None:
            return
        try:
            lead.node.propose_conf_change(cc)
        except ProposalDropped:
            return
        if cc.type is ConfChangeType.ADD_LEARNER_NODE:
            self.cluster.add_joining_node(cc.node_id)
            self.next_id += 1

    # --- the run ---------------------------------------------------------------------

    def run(self) -> SimResult:
        p = self.p
        rng = self.rng
        proposal_rate = p.proposals / p.ticks
        for _ in range(p.ticks):
            if self.churn:
                self.faults.churn()
            elif rng.random() < 0.02:
                self.faults.inject()
            if rng.random() < proposal_rate * 1.2 and self.proposed < p.proposals:
                self.propose()
            if p.membership and rng.random() < 0.004:
                self.change_membership()
            self.round()
        heal_ticks = self.heal_and_check()
        lead = self.leader()
        assert lead is not None and lead.node is not None
        return SimResult(p.seed, p.nodes, self.cov, self.checker.max_committed, lead.id,
                         lead.node.raft.term, heal_ticks)

    def heal_and_check(self, bound: int = 600) -> int:
        """Heal everything; a leader must appear and fresh proposals must commit."""
        self.net.cut.clear()
        self.cov.counts["partitions_healed"] += 1
        self.net.faults = False
        for n in self.cluster.nodes.values():
            if not n.up:
                n.start()
        start = self.now
        finals = [f"final-{self.p.seed}-{i}".encode() for i in range(5)]
        last_try: dict[bytes, int] = {}
        while not self._all_applied(finals):
            if self.now - start >= bound:
                self._fail_liveness(finals, bound)
            self.round()
            lead = self.leader()
            if lead is None or lead.node is None:
                continue
            for f in finals:
                # a client retries a proposal that a leadership change may have lost
                if f not in lead.values and self.now - last_try.get(f, -999) >= 40:
                    last_try[f] = self.now
                    with contextlib.suppress(ProposalDropped):
                        lead.node.propose(f)
        for n in self.cluster.nodes.values():
            self.checker.check_values(n)
        return self.now - start

    def _members_in_config(self) -> list[SimNode]:
        lead = self.leader()
        assert lead is not None and lead.node is not None
        cs = lead.node.raft.prs.conf_state()
        return [self.cluster.nodes[i] for i in (*cs.voters, *cs.learners)]

    def _all_applied(self, finals: list[bytes]) -> bool:
        if self.leader() is None:
            return False
        return all(set(finals) <= set(n.values) for n in self._members_in_config())

    def _fail_liveness(self, finals: list[bytes], bound: int) -> None:
        lead = self.leader()
        states = {i: (r.name if (r := n.role()) is not None else "down", n.applied_index)
                  for i, n in self.cluster.nodes.items()}
        raise SafetyViolation(
            f"liveness: after healing, {bound} ticks passed without "
            f"{'a leader' if lead is None else 'all proposals applied'}; "
            f"nodes {states}"
        )


def run_seed(seed: int, nodes: int | None = None, ticks: int = 2000,
             proposals: int = 200) -> SimResult:
    size = nodes if nodes is not None else (3, 5, 7)[seed % 3]
    return Simulation(SimParams(seed, size, ticks, proposals)).run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Replay one seed of the Raft simulation.")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--ticks", type=int, default=2000)
    args = ap.parse_args(argv)
    try:
        res = run_seed(args.seed, args.nodes, args.ticks)
    except SafetyViolation as exc:
        print(f"seed {args.seed}: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"seed {res.seed}: ok, {res.nodes} nodes, {res.committed} entries committed, "
          f"leader {res.final_leader} term {res.final_term}, healed in {res.heal_ticks} ticks")
    print(dict(res.cov.counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
