"""kubectl helpers for the apiserver-on-a-store scenarios: JSON reads and watch streams.

:class:`KubectlWatch` runs ``kubectl get -w --output-watch-events -o json`` as a child
process, decodes its stream of JSON watch events on a reader thread and is stopped by pid
(a context manager, so also when the test fails). :func:`store_leader` asks every store
member for its Status (etcdctl 3.6.16, the same command for etcd and raftkv) and returns
the member that the others name as leader.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.etcd import Member
from tests.support.k8s import KUBECTL, ControlPlane
from tests.support.proc import wait_until

Event = tuple[str, dict[str, Any]]  # (ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, object)


def kget(cp: ControlPlane, *args: str) -> dict[str, Any]:
    """``kubectl get ARGS -o json``, parsed; raises with kubectl's stderr on failure."""
    out = cp.kubectl("get", *args, "-o", "json")
    if out.returncode != 0:
        raise RuntimeError(f"kubectl get {' '.join(args)}: {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def names(cp: ControlPlane, *args: str) -> set[str]:
    """Names of the objects ``kubectl get ARGS`` lists."""
    return {item["metadata"]["name"] for item in kget(cp, *args)["items"]}


def apply_json(cp: ControlPlane, obj: dict[str, Any], verb: str = "apply") -> None:
    out = cp.kubectl(verb, "-f", "-", input=json.dumps(obj))
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {verb}: {out.stderr.strip()}")


class KubectlWatch:
    """A ``kubectl get -w`` child whose decoded events accumulate in :attr:`events`."""

    def __init__(self, cp: ControlPlane, *args: str, log: Path) -> None:
        self.argv = [str(KUBECTL), f"--kubeconfig={cp.kubeconfig}", "get", *args,
                     "-w", "--output-watch-events", "-o", "json"]
        self.log = log
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> KubectlWatch:
        with open(self.log, "ab") as err:
            self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buf = ""
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            buf += chunk.decode(errors="replace")
            while True:
                buf = buf.lstrip()
                try:
                    obj, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break
                buf = buf[end:]
                with self._lock:
                    self.events.append((str(obj.get("type")), obj.get("object") or {}))

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def seen(self, kind: str) -> set[str]:
        """Names of the objects seen in events of type ``kind``."""
        with self._lock:
            return {o.get("metadata", {}).get("name", "") for t, o in self.events if t == kind}

    def wait_for(self, pred: Callable[[KubectlWatch], bool], timeout: float, what: str) -> None:
        wait_until(lambda: pred(self), timeout, f"watch {' '.join(self.argv[3:])}: {what}",
                   0.1)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)


def member_status(cp: ControlPlane, m: Member) -> dict[str, Any] | None:
    """``etcdctl endpoint status`` of one store member, or None when it does not answer."""
    out = cp.etcd.etcdctl("endpoint", "status", "-w", "json", endpoints=[m.client_url],
                          version="3.6", check=False, timeout=10)
    if out.returncode != 0:
        return None
    rows = json.loads(out.stdout)
    status: dict[str, Any] = rows[0]["Status"]
    return status


def store_leader(cp: ControlPlane) -> Member:
    """The store member that is the Raft leader (as its own Status says)."""
    found: list[Member] = []

    def probe() -> bool:
        for m in cp.etcd.members:
            st = member_status(cp, m) if m.proc is not None and m.proc.alive() else None
            if st and st["leader"] and st["leader"] == st["header"]["member_id"]:
                found.append(m)
                return True
        return False

    wait_until(probe, 30, "a store member that reports itself leader", 0.2)
    return found[0]
