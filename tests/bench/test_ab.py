"""bench/ab.py's report (pure; the rounds run outside ``make test``): medians per tree and
the rounds each tree won on writes/s, p50 and CPU per write; and the export of a git
revision's package, which the base tree's members run from."""

from __future__ import annotations

from pathlib import Path

from bench.ab import export, round_lines, summary
from bench.cpu_split import Split


def _split(per_s: float, p50: float, cpu_s: float) -> Split:
    # 1,000 writes; all the CPU on the leader: cpu_s seconds -> cpu_s ms per write
    return Split("raftkv", 1, 1000, per_s, p50, cpu_s, None, 0.0, 0.0)


ROUNDS = [{"base": _split(100, 6.0, 9.0), "new": _split(120, 5.0, 8.0)},
          {"base": _split(130, 5.5, 7.0), "new": _split(125, 5.0, 7.5)},
          {"base": _split(90, 7.0, 10.0), "new": _split(140, 4.5, 8.5)}]


def test_summary_gives_medians_and_rounds_won() -> None:
    lines = summary(["base", "new"], ROUNDS)
    assert lines[2] == "| base | 100 | 6.00 | 9.000 | 1 of 3 | 0 | 1 |"
    assert lines[3] == "| new | 125 | 5.00 | 8.000 | 2 of 3 | 3 | 2 |"


def test_round_lines_list_every_round_of_every_tree() -> None:
    lines = round_lines(["base", "new"], ROUNDS)
    assert len(lines) == 2 + 6
    assert lines[2] == "| 1 | base | 100 | 6.00 | 9.000 | 0.000 | 9.000 |"
    assert lines[7] == "| 3 | new | 140 | 4.50 | 8.500 | 0.000 | 8.500 |"


def test_export_unpacks_the_revisions_package(tmp_path: Path) -> None:
    root = export("HEAD", tmp_path)
    assert (root / "raftkv" / "__init__.py").exists()
    assert (root / "raftkv" / "server" / "raftserver.py").exists()
