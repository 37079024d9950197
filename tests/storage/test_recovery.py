"""Power loss at every mutating file-system call of seeded node scripts (see recovery.py).

Seeds replay exactly: a failure names seed and crash point; rerun with
``pytest tests/storage/test_recovery.py -k 'seed'``.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage import recovery

SEEDS = [1, 2, 3, 4]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The SQLite crash images live on tmpfs when there is one: the power-loss model of
    the backend is a copy of its files at the cut (SQLite's own fsyncs are trusted), so
    the disk's fsync latency only slows the test down."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="raftkv-recovery-") as d:
            yield Path(d)
    else:
        yield tmp_path


@pytest.mark.parametrize("seed", SEEDS)
def test_power_loss_at_every_step(seed: int, workdir: Path) -> None:
    _, _, total = recovery.run(seed, workdir / "full")
    assert total > 60  # the script did real work
    outcomes: set[str] = set()
    for k in range(total + 1):
        image, expect, _ = recovery.run(seed, workdir / f"c{k}", crash_at=k)
        for trial in range(2):  # two different power losses of the same image
            img = image.copy(f"trial{trial}")
            try:
                summary = recovery.check(img, expect, random.Random(seed * 100003 + k * 7 + trial))
                outcomes.add(summary.split()[0])
            except AssertionError as e:
                raise AssertionError(f"seed {seed}, crash_at {k}, trial {trial}: {e}") from e
    print(f"seed {seed}: {total} crash points, outcomes {sorted(outcomes)}")
    assert {"clean", "inflight"} <= outcomes
