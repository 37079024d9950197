"""Randomized Paxos campaign: Basic and Multi-Paxos seeds, safety at every step, liveness
after healing; and each named check shown to fire.

``PAXOS_SIM_SEEDS`` sets how many seeds run (default 400), ``PAXOS_SIM_FIRST_SEED`` where
they start; a failing seed prints the command that replays it. The slow campaign runs
``PAXOS_SIM_LONG_SEEDS`` (default 200; make test runs it) longer seeds (2000 ticks, 200
proposals) from seed 100000.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from raftkv.paxos import Accepted, Ballot, Message, MsgType
from raftkv.paxos.sim import PaxosCluster
from raftkv.paxos.types import Persist, Ready
from tests.paxos.sim_harness import (
    COUNTERS,
    Checker,
    Coverage,
    SafetyViolation,
    SimResult,
    run_seed,
)

SEEDS = int(os.environ.get("PAXOS_SIM_SEEDS", "400"))
FIRST = int(os.environ.get("PAXOS_SIM_FIRST_SEED", "0"))
LONG_SEEDS = int(os.environ.get("PAXOS_SIM_LONG_SEEDS", "200"))  # make test runs slow tests


def _run(args: tuple[int, int, int]) -> SimResult | str:
    seed, ticks, proposals = args
    try:
        return run_seed(seed, ticks, proposals)
    except SafetyViolation as exc:
        return (f"seed {seed}: {exc}\n  replay: .venv/bin/python -m tests.paxos.sim_harness "
                f"--seed {seed} --ticks {ticks} --proposals {proposals}")


def _campaign(seeds: range, ticks: int, proposals: int) -> Coverage:
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_run, [(s, ticks, proposals) for s in seeds], chunksize=16))
    failures = [r for r in results if isinstance(r, str)]
    assert not failures, "\n".join(failures[:5])
    total = Coverage()
    kinds = set()
    for r in results:
        assert isinstance(r, SimResult)
        total.add(r.cov)
        kinds.add((r.kind, r.nodes))
    table = "\n".join(f"  {k:16} {total.counts[k]:>8}" for k in COUNTERS)
    print(f"\n{len(results)} seeds ({sorted(kinds)}), coverage:\n{table}")
    zero = [k for k in COUNTERS if total.counts[k] == 0]
    assert not zero, f"the campaign never exercised: {zero}"
    assert len(kinds) == 6 or len(seeds) < 12
    return total


def test_randomized_campaign() -> None:
    _campaign(range(FIRST, FIRST + SEEDS), 600, 60)


@pytest.mark.slow
def test_long_randomized_campaign() -> None:
    _campaign(range(100_000, 100_000 + LONG_SEEDS), 2000, 200)


def test_replay_is_exact() -> None:
    for seed in (3, 10):
        a, b = run_seed(seed), run_seed(seed)
        assert (a.decided, a.heal_ticks, a.cov.counts) == (b.decided, b.heal_ticks,
                                                           b.cov.counts)


# --- each named check fires on the state it forbids --------------------------------------

B1, B2 = Ballot(1, 1), Ballot(2, 2)


def _accepts(i: int, b: Ballot, v: bytes) -> Ready:
    return Ready(Persist(accepted=[Accepted(i, b, v)]))


def _setup() -> tuple[Checker, PaxosCluster]:
    import random

    c = PaxosCluster([1, 2, 3], "multi", random.Random(0))
    ch = Checker(3, Coverage())
    ch.proposed |= {b"a", b"b"}
    return ch, c


def test_check_one_value_per_instance() -> None:
    ch, c = _setup()
    for n in (1, 2):
        ch.on_ready(c.nodes[n], _accepts(0, B1, b"a"))
    ch.on_ready(c.nodes[2], _accepts(0, B2, b"b"))
    with pytest.raises(SafetyViolation, match=r"^one value per instance"):
        ch.on_ready(c.nodes[3], _accepts(0, B2, b"b"))


def test_check_proposed() -> None:
    ch, c = _setup()
    ch.on_ready(c.nodes[1], _accepts(0, B1, b"zz"))
    with pytest.raises(SafetyViolation, match=r"^proposed"):
        ch.on_ready(c.nodes[2], _accepts(0, B1, b"zz"))


def test_check_learners_agree() -> None:
    ch, c = _setup()
    for n in (1, 2):
        ch.on_ready(c.nodes[n], _accepts(0, B1, b"a"))
    ch.on_ready(c.nodes[1], Ready(chosen=[(0, b"a")]))
    with pytest.raises(SafetyViolation, match=r"^learners agree"):
        ch.on_ready(c.nodes[2], Ready(chosen=[(0, b"b")]))


def test_check_durable_choice() -> None:
    ch, c = _setup()
    ch.on_ready(c.nodes[1], _accepts(0, B1, b"a"))  # one acceptor is not a majority
    with pytest.raises(SafetyViolation, match=r"^durable choice"):
        ch.on_ready(c.nodes[1], Ready(chosen=[(0, b"a")]))


def test_check_unique_ballot_across_restarts() -> None:
    ch, c = _setup()
    prep = Message(MsgType.PREPARE, 1, 2, B1)
    ch.on_ready(c.nodes[1], Ready(messages=[prep]))
    c.nodes[1].crash()
    c.nodes[1].start()
    with pytest.raises(SafetyViolation, match=r"^unique ballot"):
        ch.on_ready(c.nodes[1], Ready(messages=[prep]))


def test_check_unique_ballot_per_value() -> None:
    ch, c = _setup()
    ch.on_ready(c.nodes[1], Ready(messages=[Message(MsgType.ACCEPT, 1, 2, B1, 0, b"a")]))
    with pytest.raises(SafetyViolation, match=r"^unique ballot"):
        ch.on_ready(c.nodes[1], Ready(messages=[Message(MsgType.ACCEPT, 1, 3, B1, 0, b"b")]))
