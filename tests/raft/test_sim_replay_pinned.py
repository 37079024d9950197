"""Raft's simulation seeds replay event for event across changes to the simulator.

The digests were recorded on main before the seeded network and fault model moved out
of ``tests/raft/sim_harness.py`` into ``raftkv/simnet.py`` (shared with the Paxos
simulation). Seeds 0-3 and 9 run the random fault injector (crashes, partitions, one-way
cuts, rate changes, membership), 4-5 the churn mode; 1234 is a full-length default run.
A changed digest means a Raft seed no longer replays the run it named before.
"""

from __future__ import annotations

import pytest

from tests.raft.trace_digest import trace_digest

PINNED = {
    (0, 600, 60): "0827f216f5b64d77",
    (1, 600, 60): "b1339d0626f04c52",
    (3, 600, 60): "dfa2d61e727e4fb0",
    (4, 600, 60): "6de123dd448450d8",
    (5, 600, 60): "33d8066570e352b3",
    (9, 600, 60): "6765106b8164de08",
    (1234, 2000, 200): "0702068f5a946199",
}


@pytest.mark.parametrize(("seed", "ticks", "proposals"), sorted(PINNED))
def test_raft_seed_replays_unchanged(seed: int, ticks: int, proposals: int) -> None:
    got = trace_digest(seed, (3, 5, 7)[seed % 3], ticks, proposals)
    assert got == PINNED[(seed, ticks, proposals)], (
        f"seed {seed} no longer replays the pinned trace; replay: "
        f".venv/bin/python -m tests.raft.sim_harness --seed {seed}")
