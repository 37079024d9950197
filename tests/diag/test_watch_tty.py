"""``diag watch`` on a terminal draws a live table; piped, it prints plain lines."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from tests.diag.conftest import DIAG, eps, run_diag
from tests.support.etcd import Cluster

pytestmark = pytest.mark.slow  # real etcd / Prometheus processes


def test_live_table_on_a_terminal(etcd35: Cluster) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(DIAG), "--endpoints", eps(etcd35), "watch", "--duration",
                             "1s", "--interval", "200ms"], stdout=slave, stderr=slave,
                            stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "160"})
    os.close(slave)
    chunks: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen
    assert "diag watch" in screen and "RAFT INDEX" in screen and "\x1b[" in screen
    assert "watched " in screen


def test_plain_lines_when_piped(etcd35: Cluster) -> None:
    r = run_diag("--endpoints", eps(etcd35), "watch", "--duration", "300ms")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "\x1b[" not in r.out and len(lines) == 2
    assert " leader m" in lines[0] and " term " in lines[0]
    assert "watched " in lines[1] and "0 election(s)" in lines[1]
