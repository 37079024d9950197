"""``python -m raftkv.demo split-brain`` on five real members: every claim holds; with the
test-only switch that lets a deposed leader keep answering (no check-quorum, no
ReadIndex), the demo reports two members claiming leadership and a stale read, and exits
with those claims' codes."""

from __future__ import annotations

import pytest

from raftkv.demo import outside, splitbrain

pytestmark = pytest.mark.slow  # five real raftkv processes, ~15 s per run


def test_every_claim_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert splitbrain.main() == 0
    out = capsys.readouterr().out
    for text in splitbrain.CLAIMS.values():
        assert f"[ok] {text}" in out
    assert "Every claim held." in out
    assert "-> " in out and "put /split/minority-0  ->  term" in out  # the log, before/after
    if outside.etcdctl() is not None:  # the outside view: etcdctl before, during, after
        assert out.count("`etcdctl endpoint status`") == 3
        assert out.count("IS LEADER") == 3


def test_a_deposed_leader_that_keeps_answering_is_reported(
        capsys: pytest.CaptureFixture[str]) -> None:
    # the switch is honoured because pytest sets PYTEST_CURRENT_TEST for the members too
    assert splitbrain.main(unsafe_serves=True) == 14
    out = capsys.readouterr().out
    assert "[FAILED, exit 14] one leader at a time" in out
    assert "both claim leadership" in out
    assert "[FAILED, exit 15] no stale read" in out
    assert "answered b'old value' while the majority holds 'new value'" in out
    # the rest still holds: Raft's commit rule does not depend on check-quorum
    for code in (10, 11, 12, 13, 16, 17, 18):
        assert f"[ok] {splitbrain.CLAIMS[code]}" in out
    if outside.etcdctl() is not None:  # etcdctl sees two leaders during the cut
        during = out.split("during the cut:")[1].split("`etcdctl")[0]
        assert during.count("IS LEADER") == 2
