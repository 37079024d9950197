"""Randomized simulation campaign: many seeds, safety after every step, liveness after healing.

``RAFT_SIM_SEEDS`` sets how many seeds run (default 500), ``RAFT_SIM_FIRST_SEED`` where
they start. A failing seed is printed with the command that replays it exactly.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from raftkv.raft import Entry, EntryType, Ready, SoftState, StateType
from raftkv.simulation import SimCluster
from tests.raft.sim_harness import (
    COUNTERS,
    Checker,
    Coverage,
    SafetyViolation,
    SimResult,
    run_seed,
)

SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "500"))
FIRST = int(os.environ.get("RAFT_SIM_FIRST_SEED", "0"))


def _run(seed: int) -> SimResult | str:
    try:
        return run_seed(seed)
    except SafetyViolation as exc:
        replay = f".venv/bin/python -m tests.raft.sim_harness --seed {seed}"
        return f"seed {seed}: {exc}\n  replay: {replay}"


def test_randomized_campaign() -> None:
    seeds = range(FIRST, FIRST + SEEDS)
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_run, seeds, chunksize=8))
    failures = [r for r in results if isinstance(r, str)]
    assert not failures, "\n".join(failures[:5])
    total = Coverage()
    sizes: Counter[int] = Counter()
    for r in results:
        assert isinstance(r, SimResult)
        total.add(r.cov)
        sizes[r.nodes] += 1
    table = "\n".join(f"  {k:22} {total.counts[k]:>8}" for k in COUNTERS)
    print(f"\n{len(results)} seeds (cluster sizes {dict(sizes)}), coverage:\n{table}")
    zero = [k for k in COUNTERS if total.counts[k] == 0]
    assert not zero, f"the campaign never exercised: {zero}"
    assert set(sizes) == {3, 5, 7} or SEEDS < 3


def test_replay_is_exact() -> None:
    a, b = run_seed(1234), run_seed(1234)
    assert (a.committed, a.final_leader, a.final_term, a.cov.counts) == (
        b.committed, b.final_leader, b.final_term, b.cov.counts)


def _leader_ready(node_id: int) -> Ready:
    return Ready(soft_state=SoftState(node_id, StateType.LEADER))


def test_checker_flags_two_leaders_in_one_term() -> None:
    c = SimCluster([1, 2, 3], seed=1)
    checker = Checker(Coverage())
    n1, n2 = c.nodes[1], c.nodes[2]
    checker.on_ready(n1, _leader_ready(1))
    with pytest.raises(SafetyViolation, match="election safety"):
        checker.on_ready(n2, _leader_ready(2))


def test_checker_flags_a_replaced_committed_entry() -> None:
    c = SimCluster([1, 2, 3], seed=1)
    checker = Checker(Coverage())
    checker.on_ready(c.nodes[1], Ready(committed_entries=[Entry(2, 5, EntryType.NORMAL, b"a")]))
    with pytest.raises(SafetyViolation, match="state machine safety"):
        checker.on_ready(c.nodes[2], Ready(committed_entries=[Entry(3, 5, EntryType.NORMAL, b"b")]))


def test_checker_flags_log_mismatch() -> None:
    c = SimCluster([1, 2, 3], seed=1)
    checker = Checker(Coverage())
    checker.on_ready(c.nodes[1], Ready(entries=[Entry(2, 4, EntryType.NORMAL, b"a")]))
    with pytest.raises(SafetyViolation, match="log matching"):
        checker.on_ready(c.nodes[2], Ready(entries=[Entry(2, 4, EntryType.NORMAL, b"b")]))
