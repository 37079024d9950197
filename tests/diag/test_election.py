"""Kill the etcd leader: diag status shows a new leader and a higher term, and diag watch
(with --probe-writes) reports the election, how long there was no leader, and the write
gap; on SIGTERM it stops cleanly and its leased probe key is gone.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading

import pytest

from tests.diag.conftest import DIAG, eps, etcdctl_json, run_diag
from tests.support.etcd import Cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real etcd / Prometheus processes

ELECTED = re.compile(
    r"elected (?P<new>\S+) \((?P<newid>[0-9a-f]+)\) term (?P<term>\d+) "
    r"\(was (?P<old>\S+) \((?P<oldid>[0-9a-f]+)\) term (?P<oldterm>\d+)\); "
    r"no leader for (?P<lost>[0-9.]+)(?P<unit>µs|ms|s)"
)


class Lines:
    """Collects a child's stdout lines on a thread, so the test never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self.thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern: str) -> str | None:
        return next((ln for ln in self.lines if re.search(pattern, ln)), None)


def test_kill_leader(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    before = run_diag("--endpoints", eps(c), "-w", "json", "status").json()
    old_leader = before["cluster"]["leader"]
    (old_term,) = before["cluster"]["terms"]
    leader = next(m for m, row in zip(c.members, before["endpoints"], strict=True)
                  if row["is_leader"])
    assert row_id(before, leader) == old_leader

    proc = subprocess.Popen(
        [str(DIAG), "--endpoints", eps(c), "watch", "--interval", "100ms", "--probe-writes",
         "--probe-prefix", "__diag_probe/", "--duration", "60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = Lines(proc)
        wait_until(lambda: out.find(rf"leader \S+ \({old_leader}\) term {old_term}$"), 20,
                   "watch's initial leader line")
        wait_until(lambda: etcdctl_json(c, "get", "--prefix", "__diag_probe/").get("kvs"), 10,
                   "the probe key to be written")
        c.kill(leader)
        wait_until(lambda: out.find("elected "), 30, "watch to report the election")
        wait_until(lambda: out.find("writes resumed after a"), 30, "probe writes to resume")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        out.thread.join(timeout=10)  # the pump has read everything the child wrote
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr
    text = "\n".join(out.lines)
    print(text)
    ev = ELECTED.search(text)
    assert ev, text
    assert ev["oldid"] == old_leader and ev["newid"] != old_leader
    assert int(ev["term"]) > int(ev["oldterm"]) == old_term
    lost = float(ev["lost"]) * {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[ev["unit"]]
    assert 0 < lost < 30
    assert out.find(rf"leader lost: .*was \S+ \({old_leader}\) term {old_term}")
    assert out.find(rf"127.0.0.1:{leader.client_port}: unreachable")
    assert re.search(r"watched .*: [1-9]\d* election\(s\), longest leaderless .* longest write gap "
                     r"\d", text), text

    # diag status agrees: a new leader, a higher term, among the two survivors.
    alive = [m for m in c.members if m is not leader]
    after = run_diag("--endpoints", ",".join(m.client_url for m in alive), "-w", "json",
                     "status").json()
    assert after["cluster"]["leader"] == ev["newid"]
    assert after["cluster"]["terms"] == [int(ev["term"])]
    assert after["cluster"]["agree"] is True
    # The probe lease was revoked on exit: nothing left under the prefix.
    left = etcdctl_json(c, "get", "--prefix", "__diag_probe/",
                        endpoints=[x.client_url for x in alive])
    assert not left.get("kvs"), left


def row_id(status: dict[str, object], member: object) -> str:
    rows = status["endpoints"]
    assert isinstance(rows, list)
    port = getattr(member, "client_port")  # noqa: B009
    return str(next(r["id"] for r in rows if r["endpoint"].endswith(f":{port}")))
