"""Each fsync in raftkv/storage is needed: removing any one makes the recovery tests fail."""

from __future__ import annotations

import pytest

from tests.storage import fsync_mutants


@pytest.mark.slow
def test_every_fsync_mutant_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    sites = fsync_mutants.sites()
    assert {"wal-save", "wal-cut-file", "wal-cut-dir", "wal-create-dir", "snap-file",
            "snap-dir"} <= set(sites)
    assert fsync_mutants.main([]) == 0, capsys.readouterr().out
