"""Raft's simulation seeds replay event for event across changes to the simulator.

The digests were first recorded on main before the seeded network and fault model moved
out of ``tests/raft/sim_harness.py`` into ``raftkv/simnet.py`` (shared with the Paxos
simulation), which left them unchanged; they were recorded again when the leader began
to send one append per follower per Ready (``Raft.flush_appends``), which changes which
messages a run sends, on purpose. Seeds 0-3 and 9 run the random fault injector (crashes,
partitions, one-way cuts, rate changes, membership), 4-5 the churn mode; 1234 is a
full-length default run.
A changed digest means a Raft seed no longer replays the run it named before.
"""

from __future__ import annotations

import pytest

from tests.raft.trace_digest import trace_digest

PINNED = {
    (0, 600, 60): "288f9c4ef15aa924",
    (1, 600, 60): "6da5aedcee364b69",
    (3, 600, 60): "ffcf1e7cb18e2ddf",
    (4, 600, 60): "c4bccebabb3c46ec",
    (5, 600, 60): "84e8eb55b08ca437",
    (9, 600, 60): "44e5866ede81949f",
    (1234, 2000, 200): "b5c0d329b40a9c3d",
}


@pytest.mark.parametrize(("seed", "ticks", "proposals"), sorted(PINNED))
def test_raft_seed_replays_unchanged(seed: int, ticks: int, proposals: int) -> None:
    got = trace_digest(seed, (3, 5, 7)[seed % 3], ticks, proposals)
    assert got == PINNED[(seed, ticks, proposals)], (
        f"seed {seed} no longer replays the pinned trace; replay: "
        f".venv/bin/python -m tests.raft.sim_harness --seed {seed}")
