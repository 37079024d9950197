"""Scenario scripts (tests/raft/testdata/*.txt) in etcd-io/raft's interaction style.

Each file is replayed and its output must equal the golden text; ``--rewrite`` updates it
(review the diff!). ``check`` lines inside the files make a wrong outcome print ERROR, and
no golden file may contain ERROR, so a rewrite cannot bless a broken scenario.
"""

from pathlib import Path

import pytest

from tests.raft.interaction import run_file

DATA = Path(__file__).parent / "testdata"
FILES = sorted(DATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path, request: pytest.FixtureRequest) -> None:
    expected, actual = run_file(path, rewrite=bool(request.config.getoption("--rewrite")))
    assert "ERROR" not in actual, f"{path.name}: a check failed:\n" + "\n".join(
        line for line in actual.splitlines() if "ERROR" in line
    )
    assert actual == expected, f"{path.name}: output differs from the golden file"


def test_every_scenario_has_checks() -> None:
    for p in FILES:
        assert "\ncheck " in p.read_text(), f"{p.name} asserts nothing with check"
