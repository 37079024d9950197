"""`make demo` (raftkv.demo): a real three-member cluster loses its leader; the demo runs to
the end and reports that every fact held."""

from __future__ import annotations

import pytest

from raftkv import demo

pytestmark = pytest.mark.slow  # real raftkv processes


def test_demo_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert "Everything held." in out
    assert "[ok] in a higher term" in out
    assert "[ok] no acknowledged write was lost" in out
