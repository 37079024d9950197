"""Suite-wide hooks: the time each test group took, printed at the end of the run, and the
log tails of the processes a failing test started and left running, in its report.

A group is a test file's directory below tests/ (tests/raft, tests/e2e/kind, ...). The
time of a group is the sum of its tests' setup, call and teardown durations, so a
session fixture's start-up counts in the group whose first test used it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import PurePosixPath

import pytest

from tests.support.proc import live_log_tails

_group_seconds: defaultdict[str, float] = defaultdict(float)
_group_tests: defaultdict[str, int] = defaultdict(int)


def _group(nodeid: str) -> str:
    return str(PurePosixPath(nodeid.split("::", 1)[0]).parent)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    group = _group(report.nodeid)
    _group_seconds[group] += report.duration
    if report.when == "call":
        _group_tests[group] += 1


_SETUP_STARTED = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_SETUP_STARTED] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        # the processes this test's setup and call started, before teardown stops them
        tails = live_log_tails(item.stash.get(_SETUP_STARTED, 0.0))
        if tails:
            report.sections.append(("logs of the processes this test started", tails))
    return report


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _group_seconds:
        return
    terminalreporter.section("time per test group")
    for group, seconds in sorted(_group_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(
            f"{group:<32} {seconds:8.1f} s  {_group_tests[group]:4d} tests"
        )
