"""--watch-progress-notify-interval: etcd's flag name, Go duration syntax, 10 min default."""

from __future__ import annotations

import pytest

from raftkv.cli import build_parser, config_from_args
from raftkv.server.config import ConfigError, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600.0), ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0),
    ("250us", 0.00025)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration("watch-progress-notify-interval", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "1s2", "-1s", "1 s"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--watch-progress-notify-interval"):
        parse_duration("watch-progress-notify-interval", text)


def test_flag_default_and_value() -> None:
    assert config_from_args(build_parser().parse_args([])).watch_progress_notify_interval == 600
    cfg = config_from_args(build_parser().parse_args(["--watch-progress-notify-interval=1s"]))
    assert cfg.watch_progress_notify_interval == 1.0
    old = build_parser().parse_args(["--experimental-watch-progress-notify-interval=2s"])
    assert config_from_args(old).watch_progress_notify_interval == 2.0  # etcd 3.5's name
    with pytest.raises(ConfigError, match="positive"):
        config_from_args(build_parser().parse_args(["--watch-progress-notify-interval=0s"]))
