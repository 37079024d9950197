"""The demo command's usage errors and its refusal of the test-only switch outside pytest
(fast: no member is started), and the report's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raftkv.demo.report import EXIT_SETUP, EXIT_USAGE, Report
from raftkv.server import unsafe


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv.demo", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_unknown_demo_is_one_sentence_and_exit_2() -> None:
    r = _demo("no-such-demo")
    assert r.returncode == EXIT_USAGE
    assert r.stderr.count("\n") == 1 and "invalid choice" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_unsafe_switch_is_refused_outside_pytest() -> None:
    env = {k: v for k, v in os.environ.items() if k != unsafe.UNDER_TEST}
    r = _demo("split-brain", "--unsafe-deposed-leader-serves", env=env)
    assert r.returncode == unsafe.EXIT_REFUSED
    assert "refusing" in r.stderr and r.stdout == ""


def test_the_exit_code_is_the_first_failed_claims() -> None:
    r = Report()
    r.claim(10, "a", True)
    assert r.exit_code() == 0
    r.claim(12, "b", False)
    r.claim(11, "c", False)
    assert r.exit_code() == 12
    assert "[FAILED, exit 12] b" in r.render() and "2 of 3 claims failed." in r.render()
    with pytest.raises(AssertionError):
        r.claim(12, "again", True)
    with pytest.raises(AssertionError):
        r.claim(EXIT_SETUP, "reserved", True)
