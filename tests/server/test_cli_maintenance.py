"""The maintenance flags as etcd spells them: Go durations for --corrupt-check-time (and
its deprecated experimental alias), a Go boolean for --experimental-initial-corrupt-check."""

from __future__ import annotations

import pytest

from raftkv.cli import build_parser, config_from_args
from raftkv.server.config import ConfigError
from raftkv.server.config import parse_duration as go_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("0s", 0.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration("corrupt-check-time", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "abc", "1x", "s", "-1s", "1s2"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--corrupt-check-time"):
        go_duration("corrupt-check-time", text)


@pytest.mark.parametrize(("argv", "every", "initial"), [
    ([], 0.0, False),
    (["--corrupt-check-time=5m"], 300.0, False),
    (["--experimental-corrupt-check-time", "10s"], 10.0, False),
    (["--experimental-initial-corrupt-check"], 0.0, True),
    (["--experimental-initial-corrupt-check=false"], 0.0, False),
])
def test_flags_reach_the_config(argv: list[str], every: float, initial: bool) -> None:
    cfg = config_from_args(build_parser().parse_args(argv))
    assert (cfg.corrupt_check_time, cfg.initial_corrupt_check) == (every, initial)
