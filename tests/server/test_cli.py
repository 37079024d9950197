"""The raftkv command: etcd's flags, one-sentence errors with distinct exit codes, a data
dir used by one process only, a corrupt WAL refused, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.etcd import raftkv_bin
from tests.support.proc import Proc, free_port, port_open, wait_until

pytestmark = pytest.mark.slow  # real raftkv processes


def _flags(data: Path, name: str = "a") -> list[str]:
    c, p = free_port(), free_port()
    return [f"--name={name}", f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{c}",
            f"--advertise-client-urls=http://127.0.0.1:{c}",
            f"--listen-peer-urls=http://127.0.0.1:{p}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
            f"--initial-cluster={name}=http://127.0.0.1:{p}"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(raftkv_bin()), *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("args", "says"), [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--heartbeat-interval=100", "--election-timeout=200"], "at least 5 times"),
    (["--listen-client-urls=localhost"], "is not a URL"),
    (["--initial-cluster-state=maybe"], "invalid choice"),
    (["--name=x", "--initial-cluster=y=http://127.0.0.1:1"], "no entry for this member"),
])
def test_bad_flags_exit_2_with_one_sentence(args: list[str], says: str) -> None:
    r = _run(*args)
    assert r.returncode == 2
    assert says in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_data_dir_is_locked_and_sigterm_is_clean(tmp_path: Path) -> None:
    data = tmp_path / "a"
    flags = _flags(data)
    client_port = int(flags[2].rsplit(":", 1)[1])
    first = Proc("a", [str(raftkv_bin()), *flags], tmp_path / "a.log").start()
    try:
        wait_until(lambda: port_open(client_port), 30, "the first member to serve")
        second = _run(*_flags(data))
        assert second.returncode == 3
        assert "is in use by another process" in second.stderr
        first.signal(signal.SIGTERM)
        assert first.popen is not None
        assert first.popen.wait(15) == 0
        log = first.log_path.read_text()
        assert "shutting down" in log
        assert "event loop: asyncio" in log  # the default (raftkv.server.eventloop)
    finally:
        first.stop()


def test_an_unknown_event_loop_is_refused_before_start(tmp_path: Path) -> None:
    r = _run(*_flags(tmp_path / "a"), env={"RAFTKV_EVENT_LOOP": "tokio"})
    assert r.returncode == 2
    assert "RAFTKV_EVENT_LOOP='tokio': expected one of asyncio, uvloop" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()  # refused before the data dir was made


def test_corrupt_wal_is_refused_with_file_and_offset(tmp_path: Path) -> None:
    data = tmp_path / "a"
    flags = _flags(data)
    client_port = int(flags[2].rsplit(":", 1)[1])
    p = Proc("a", [str(raftkv_bin()), *flags], tmp_path / "a.log").start()
    try:
        wait_until(lambda: port_open(client_port), 30, "the member to serve")
    finally:
        p.stop()
    (seg,) = sorted((data / "member" / "wal").glob("*.wal"))
    raw = bytearray(seg.read_bytes())
    raw[40] ^= 0xFF  # inside the first records, not the tail
    seg.write_bytes(bytes(raw))
    r = _run(*flags)
    assert r.returncode == 3, r.stderr
    assert "is corrupt at offset" in r.stderr and seg.name in r.stderr
    assert seg.read_bytes() == bytes(raw), "the WAL must be left untouched"
