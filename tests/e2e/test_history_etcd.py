"""Real etcd 3.5.1 and raftkv pass every nemesis, on 3 and 5 members (a short campaign).

Each run: a fresh cluster behind per-link proxies, the recorded workload for a few
seconds under one fault kind, heal, final reads, all checkers. A run must have injected
its fault and completed enough operations, so it cannot pass by doing nothing.

Seeds: fixed per scenario by default (reproducible); ``HISTORY_SEED=<n>`` overrides, and
``HISTORY_SEED=random`` draws a fresh one. A failing run prints its seed, the replay
command and the file holding its history.
"""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import pytest

from tests.e2e.history.campaign import run_scenario
from tests.e2e.history.nemesis import FAULTS

pytestmark = pytest.mark.slow

DURATION = 3.0


def seed_for(name: str) -> int:
    env = os.environ.get("HISTORY_SEED", "")
    if env == "random":
        return random.randrange(1 << 31)
    if env:
        return int(env)
    return zlib.crc32(name.encode())


@pytest.mark.parametrize("server", ["etcd", "raftkv"])
@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("scenario", FAULTS)
async def test_passes(server: str, scenario: str, size: int, tmp_path: Path) -> None:
    seed = seed_for(f"{scenario}-{size}" if server == "etcd" else f"raftkv-{scenario}-{size}")
    artifacts = Path(os.environ.get("HISTORY_ARTIFACTS", "artifacts/history"))
    res = await run_scenario(scenario, size, seed, DURATION, tmp_path / "cluster", artifacts,
                             hold=(0.6, 1.2), quiet=(0.2, 0.6), min_ok=100,
                             server=server)
    where = (f"seed={seed}; replay: HISTORY_SEED={seed} pytest '{__file__}::"
             f"test_passes[{scenario}-{size}-{server}]' or python -m tests.e2e.history.torture "
             f"--scenario {scenario} --size {size} --seed {seed} --server {server}")
    assert res.faults, f"no fault injected ({where})"
    assert res.ok_ops >= 50, f"only {res.ok_ops} operations succeeded ({where})"
    assert res.report.ok, f"{where}\n{res.report.summary()}\nfaults: {res.faults}"
