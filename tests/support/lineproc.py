"""A long-running CLI (``etcdctl watch``/``lock``/``elect``) whose stdout lines a test reads.

A reader thread moves every stdout line into a queue, so a test waits for the lines it
expects with a deadline (``expect``) and can ask what arrived so far without blocking
(``drain``). ``interrupt`` sends SIGINT (etcdctl's lock and elect release on it) and waits
for the exit; ``stop`` kills the process by its pid if it still runs. Use as a context
manager so the process is stopped on every exit path.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Sequence


class LineProc:
    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def expect(self, n: int, timeout: float) -> list[str]:
        """The next ``n`` lines; fewer if the output ends or ``timeout`` passes first."""
        out: list[str] = []
        while len(out) < n:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            out.append(line)
        return out

    def drain(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                self.lines.put(None)
                return out
            out.append(line)

    def interrupt(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> LineProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
