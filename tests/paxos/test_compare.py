"""``python -m raftkv.paxos.compare`` on a small seed set: its printed claims hold, and the
numbers behind the headline claims are what the claims say."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.paxos.compare import basic_single, compare, duel, leader_crash, main


def test_compare_claims_hold_on_three_seeds() -> None:
    rep = compare([0, 1, 2], entries=20, window=120)
    assert rep.claims and all(ok for _, ok in rep.claims), [t for t, ok in rep.claims if not ok]


def test_livelock_without_backoff_and_decision_with_it() -> None:
    for seed in (0, 1):
        stuck = duel(seed, backoff=False, jitter=False, window=150)
        assert stuck.decided_at == -1 and stuck.ballots >= 100
        ok = duel(seed, backoff=True, jitter=False, window=150)
        assert 0 <= ok.decided_at < 150


def test_basic_paxos_takes_two_round_trips_and_recovery_is_measured() -> None:
    one = basic_single(0)
    assert one.entries == 1 and one.latencies == [4]
    for proto in ("raft", "multi"):
        c = leader_crash(proto, 0)
        assert c.recovery >= 10


def test_main_writes_the_report_and_rejects_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.md"
    assert main(["--seeds", "1", "--entries", "10", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("Command: `python -m raftkv.paxos.compare --seeds 1")
    assert "FAILS" not in text and "## Dueling proposers" in text
    assert main(["--seeds", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err
