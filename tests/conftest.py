"""Suite-wide hooks: the time each test group took, printed at the end of the run.

A group is a test file's directory below tests/ (tests/raft, tests/e2e/kind, ...). The
time of a group is the sum of its tests' setup, call and teardown durations, so a
session fixture's start-up counts in the group whose first test used it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath

import pytest

_group_seconds: defaultdict[str, float] = defaultdict(float)
_group_tests: defaultdict[str, int] = defaultdict(int)


def _group(nodeid: str) -> str:
    return str(PurePosixPath(nodeid.split("::", 1)[0]).parent)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    group = _group(report.nodeid)
    _group_seconds[group] += report.duration
    if report.when == "call":
        _group_tests[group] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _group_seconds:
        return
    terminalreporter.section("time per test group")
    for group, seconds in sorted(_group_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(
            f"{group:<32} {seconds:8.1f} s  {_group_tests[group]:4d} tests"
        )
