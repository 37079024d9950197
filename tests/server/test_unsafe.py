"""The test-only unsafe switch (raftkv.server.unsafe) is off by default and refused by the
``raftkv`` command outside a pytest test."""

from __future__ import annotations

import pytest

from raftkv import cli
from raftkv.server import unsafe
from raftkv.server.config import ServerConfig

VAR = unsafe.DEPOSED_LEADER_SERVES


def test_off_by_default() -> None:
    assert unsafe.deposed_leader_serves({}) is False
    assert ServerConfig().unsafe_deposed_leader_serves is False


def test_on_only_under_pytest() -> None:
    assert unsafe.deposed_leader_serves({VAR: "1", unsafe.UNDER_TEST: "t.py::x (call)"})
    with pytest.raises(unsafe.UnsafeSwitchRefused, match="only in members started by a pytest"):
        unsafe.deposed_leader_serves({VAR: "1"})
    with pytest.raises(unsafe.UnsafeSwitchRefused, match="must be 1 or unset"):
        unsafe.deposed_leader_serves({VAR: "yes", unsafe.UNDER_TEST: "x"})


def test_the_command_refuses_it_outside_a_test(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--name=m0"], environ={VAR: "1"}) == unsafe.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing" in err and "Traceback" not in err
