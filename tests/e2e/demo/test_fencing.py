"""``python -m raftkv.demo fencing``: the fenced store refuses the paused client's late
write and the unfenced one lets it overwrite; with the check removed
(``--no-fencing-check``) the demo reports the overwrite and exits with that claim's code."""

from __future__ import annotations

import pytest

from raftkv.demo import fencing

pytestmark = pytest.mark.slow  # three real raftkv processes and four client processes


def test_every_claim_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert fencing.main() == 0
    out = capsys.readouterr().out
    for text in fencing.CLAIMS.values():
        assert f"[ok] {text}" in out
    assert "refused (token" in out and "< highest token seen" in out


def test_without_the_check_the_overwrite_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert fencing.main(fenced_first=False) == 22
    out = capsys.readouterr().out
    assert "[FAILED, exit 22] fenced: A's late write with its old token is refused" in out
    assert "A's write overwrote B's newer data" in out
    assert "[FAILED, exit 23]" in out
    assert f"[ok] {fencing.CLAIMS[20]}" in out and f"[ok] {fencing.CLAIMS[24]}" in out
