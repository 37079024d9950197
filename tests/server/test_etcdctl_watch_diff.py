"""Differential test: etcdctl 3.6.16's watch, lock and elect against raftkv and against
etcd 3.6.16, same commands in the same order, same transcript.

- watch: ``--prefix --rev=1 --prev-kv`` (history catch-up), one key from a revision, a
  key range, a watch created before the writes it reports (live path), and a ``--rev``
  below the compaction (cancelled with etcd's compacted error);
- lock: two contenders for one lock; the second is seen waiting (its key exists, it has
  printed nothing) until the first is interrupted, then it holds the lock; ``lock NAME
  cmd`` runs the command under the lock;
- elect: a leader, a second candidate waiting, an observer (``elect -l``) that reports the
  first leader and then the second after the first resigns.

Compared: every event (type, key, value, create/mod revision, version, prev_kv), exit
codes and etcdctl's last stderr line. Not compared: header ids, raft terms, lease ids
inside lock/elect key names (``<lease>``), and how catch-up events are split into
responses (etcd batches them; only whole revisions per response is required, and the
history harness checks that).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd import Cluster, etcd36_bin
from tests.support.lineproc import LineProc

pytestmark = pytest.mark.slow  # real clusters

WAIT = 10.0  # the most a line may take to arrive
QUIET = 1.0  # how long a waiting contender is watched for saying it holds the lock
TXN = "\nput w/a 5\nput w/c 6\n\n\n"  # two keys, one revision


@pytest.fixture
def etcd36(tmp_path: Path) -> Any:
    c = Cluster(tmp_path / "etcd36", 3, binary=etcd36_bin())
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _ctl(c: Cluster) -> list[str]:
    return [str(etcd36_bin("etcdctl")), f"--endpoints={','.join(c.endpoints)}",
            "--command-timeout=10s"]


def _run(c: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_ctl(c), *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def _b64(s: str | None) -> str:
    return base64.b64decode(s or "").decode()


def _kv(kv: dict[str, Any] | None) -> tuple[Any, ...] | None:
    if kv is None:
        return None
    return (_b64(kv.get("key")), _b64(kv.get("value")), kv.get("create_revision", 0),
            kv.get("mod_revision", 0), kv.get("version", 0))


def _events(lines: list[str]) -> list[tuple[Any, ...]]:
    out = []
    for line in lines:
        for ev in json.loads(line).get("Events") or []:
            out.append(("DELETE" if ev.get("type") == 1 else "PUT", _kv(ev["kv"]),
                        _kv(ev.get("prev_kv"))))
    return out


def _watch(c: Cluster, n: int, *args: str, after: list[list[str]] | None = None) -> list[Any]:
    """The first ``n`` events of ``etcdctl watch ARGS -w=json`` (running ``after`` once the
    watch process started: with ``--rev`` the result does not depend on when it is)."""
    with LineProc([*_ctl(c), "watch", *args, "-w=json"]) as w:
        for cmd in after or []:
            assert _run(c, *cmd).returncode == 0
        got: list[Any] = []
        deadline = time.monotonic() + WAIT
        while len(got) < n and time.monotonic() < deadline:
            got += _events(w.expect(1, max(0.0, deadline - time.monotonic())))
        return got


def _revision(c: Cluster) -> int:
    out = json.loads(_run(c, "get", "w/", "-w=json").stdout)
    return int(out["header"]["revision"])


def _norm(line: str) -> str:
    return re.sub(r"/[0-9a-f]{6,16}$", "/<lease>", line)


def _until_keys(c: Cluster, prefix: str, n: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        out = _run(c, "get", prefix, "--prefix", "--keys-only").stdout.split()
        if len(out) >= n:
            return
    raise TimeoutError(f"{prefix} never held {n} keys")


def transcript(c: Cluster) -> list[tuple[str, Any]]:
    t: list[tuple[str, Any]] = []
    for args in (["put", "w/a", "1"], ["put", "w/b", "2"], ["put", "w/a", "3"],
                 ["del", "w/b"], ["put", "other", "x"]):
        assert _run(c, *args).returncode == 0
    assert _run(c, "txn", stdin=TXN).returncode == 0
    t.append(("prefix rev=1 prev-kv", _watch(c, 6, "w/", "--prefix", "--rev=1", "--prev-kv")))
    t.append(("key rev=3", _watch(c, 2, "w/a", "--rev=3")))
    t.append(("range [w/a, w/c)", _watch(c, 5, "w/a", "w/c", "--rev=1")))
    rev = _revision(c)
    t.append(("live", _watch(c, 2, "w/", "--prefix", f"--rev={rev + 1}", "--prev-kv",
                             after=[["put", "w/d", "7"], ["del", "w/a"]])))
    compact = _run(c, "compaction", str(rev))
    t.append(("compaction", (compact.returncode, compact.stdout.strip())))
    with LineProc([*_ctl(c), "watch", "w/", "--prefix", "--rev=2"]) as w:
        t.append(("compacted watch", (w.expect(1, WAIT), w.proc.wait(WAIT),
                                      w.stderr().strip().splitlines())))
    t += _lock(c)
    t += _elect(c)
    return t


def _lock(c: Cluster) -> list[tuple[str, Any]]:
    t: list[tuple[str, Any]] = []
    with LineProc([*_ctl(c), "lock", "L"]) as a:
        t.append(("lock A holds", [_norm(x) for x in a.expect(1, WAIT)]))
        with LineProc([*_ctl(c), "lock", "L"]) as b:
            _until_keys(c, "L/", 2)  # B is queued behind A
            t.append(("lock B while A holds", b.expect(1, QUIET)))
            t.append(("lock A released", a.interrupt()))
            t.append(("lock B holds", [_norm(x) for x in b.expect(1, WAIT)]))
            t.append(("lock B released", b.interrupt()))
    p = _run(c, "lock", "L", "echo", "under-lock")
    t.append(("lock exec", (p.returncode, p.stdout.strip())))
    return t


def _elect(c: Cluster) -> list[tuple[str, Any]]:
    t: list[tuple[str, Any]] = []
    with LineProc([*_ctl(c), "elect", "E", "p1"]) as a:
        t.append(("elect A leads", [_norm(x) for x in a.expect(2, WAIT)]))
        with LineProc([*_ctl(c), "elect", "-l", "E"]) as obs, \
                LineProc([*_ctl(c), "elect", "E", "p2"]) as b:
            t.append(("observer sees A", [_norm(x) for x in obs.expect(2, WAIT)]))
            _until_keys(c, "E/", 2)  # B campaigns behind A
            t.append(("elect B while A leads", b.expect(1, QUIET)))
            t.append(("elect A resigned", a.interrupt()))
            t.append(("elect B leads", [_norm(x) for x in b.expect(2, WAIT)]))
            t.append(("observer sees B", [_norm(x) for x in obs.expect(2, WAIT)]))
            t.append(("elect B resigned", b.interrupt()))
    return t


def test_etcdctl_watch_lock_elect_match_etcd(raftkv3: Cluster, etcd36: Cluster) -> None:
    theirs = transcript(etcd36)
    ours = transcript(raftkv3)
    # the script must prove something on etcd itself, or equality proves nothing
    got = dict(theirs)
    assert len(got["prefix rev=1 prev-kv"]) == 6 and got["prefix rev=1 prev-kv"][2][2]
    assert got["live"][1][0] == "DELETE"
    assert got["compacted watch"][1] != 0
    assert got["lock B while A holds"] == [] and got["lock B holds"] == ["L/<lease>"]
    assert got["observer sees B"] == ["E/<lease>", "p2"]
    diffs = [f"{name}\n  raftkv: {a}\n  etcd:   {b}"
             for (name, a), (_, b) in zip(ours, theirs, strict=True) if a != b]
    assert not diffs, f"{len(diffs)} of {len(theirs)} steps differ:\n" + "\n".join(diffs)
