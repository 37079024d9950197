"""Each planted Paxos bug is caught by the check it names, within its stated seeds."""

from __future__ import annotations

import pytest

from tests.paxos.mutants import MUTANTS, Mutant, run_mutant


@pytest.mark.parametrize("m", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_caught_by_its_named_check(m: Mutant) -> None:
    o = run_mutant(m)
    assert o.caught, f"{m.name} survived {m.seeds} seeds: {o.detail}"
    assert o.check == m.check, f"{m.name} was caught by {o.check!r}, not {m.check!r}"
    assert 0 <= o.seed < m.seeds


def test_unmutated_core_passes_the_same_seeds() -> None:
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from tests.paxos.mutants import prepare, run_seeds

    with TemporaryDirectory(prefix="paxos-mutant-") as d:
        prepare(Path(d))
        o = run_seeds(Path(d), max(m.seeds for m in MUTANTS))
    assert not o.caught, o.detail
