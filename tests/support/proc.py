"""Processes the tests start: free ports, readiness waits, and stop-by-pid on every exit path.

Invariant: every process started through :class:`Proc` is registered in ``_LIVE`` and is
killed by pid when its owner stops it, when the test ends (fixtures call ``stop``), and as
a last resort at interpreter exit. Logs go to files that failing tests can print.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from raftkv.ports import free_port as free_port  # re-exported: the tests' port picker

T = TypeVar("T")

_LIVE: dict[int, Proc] = {}


def wait_until(
    predicate: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy; raise with ``what`` on timeout.

    This is a readiness check, not a sleep: it returns as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # the condition may raise while the thing is not up yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class Proc:
    """One child process with its log file, stopped by pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.started = 0.0  # time.monotonic() at the last start
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        _LIVE[self.popen.pid] = self
        self.started = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap: the crash case."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        _LIVE.pop(self.popen.pid, None)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit code."""
        self._terminate()
        return self._reap(grace)

    def _terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)  # a paused one must see it
                os.kill(self.popen.pid, signal.SIGTERM)

    def _reap(self, grace: float) -> int | None:
        """Wait up to ``grace`` seconds for the exit, then SIGKILL; the exit code."""
        if self.popen is None:
            return None
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        _LIVE.pop(self.popen.pid, None)
        return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"<{self.name}: no log>"
        return "\n".join(text.splitlines()[-lines:])


def stop_all(procs: Sequence[Proc], grace: float = 10.0) -> None:
    """:meth:`Proc.stop` of several at once: SIGTERM to each, then one shared ``grace``
    for all to exit, then SIGKILL to what is left (a cluster's members stop side by side,
    not one after another)."""
    for p in procs:
        p._terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        p._reap(max(0.0, deadline - time.monotonic()))


def live_log_tails(since: float = 0.0) -> str:
    """The log tails of the processes still running that started at or after ``since``
    (``time.monotonic()``): what a failing test prints of the processes it started."""
    return "\n".join(f"--- {p.name} (pid {pid}) ---\n{p.log_tail()}"
                     for pid, p in list(_LIVE.items()) if p.started >= since)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        proc.kill()
