"""diag with etcd's auth on, against raftkv and etcd 3.6.16 set up by the same etcdctl
user script (root:rootpw, alice:alicepw with a role on ``app/``): without a user diag
says auth is on (exit 18); ``--user``/``--password`` (or ``DIAG_USER``/``DIAG_PASSWORD``)
make status, health, members and check work; a wrong password is exit 17 with one
sentence; a user without a password is a usage error; a cluster with auth off takes
``--user`` and goes on without a token, as etcdctl does. Both servers give the same codes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.diag.exitcodes import ExitCode
from tests.diag.conftest import DiagResult, etcdctl_json, metrics_args, run_diag
from tests.server.test_auth_etcdctl_diff import _setup_alice
from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster, running

pytestmark = pytest.mark.slow  # real clusters

ROOT = ["--user", "root:rootpw"]


def _diag(c: Cluster, *args: str, env: dict[str, str] | None = None) -> DiagResult:
    return run_diag("--endpoints", ",".join(c.endpoints), *metrics_args(c), *args, env=env)


def _one_line(r: DiagResult, *words: str) -> None:
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if ln]
    assert lines and all(ln.startswith("diag: ") for ln in lines), r.err
    for w in words:
        assert w in lines[0], (w, r.err)
    assert "rootpw" not in r.err and "wrongpw" not in r.err  # no password in a message


def _session(c: Cluster) -> dict[str, int]:
    """The codes diag gives, step by step; asserts what each step must show."""
    codes: dict[str, int] = {}
    r = _diag(c, *ROOT, "status")  # auth still off: --user is accepted, no token used
    codes["auth-off --user"] = r.code
    assert r.code == ExitCode.OK, r.err
    _setup_alice(c)

    r = _diag(c, "status")
    codes["no user"] = r.code
    _one_line(r, "auth enabled", "--user")

    r = _diag(c, "--user", "root:wrongpw", "status")
    codes["wrong password"] = r.code
    _one_line(r, "wrong user name or password", "'root'")

    r = _diag(c, "--user", "alice", "status")
    codes["no password"] = r.code
    assert "--user alice has no password" in r.err, r.err

    r = _diag(c, *ROOT, "-w", "json", "status")
    codes["status root"] = r.code
    assert r.code == ExitCode.OK, r.err
    assert len(r.json()["endpoints"]) == len(c.members)

    r = _diag(c, "--user", "alice", "--password", "alicepw", "-w", "json", "health")
    codes["health alice --password"] = r.code
    assert r.code == ExitCode.OK, r.err
    assert all(h["health"] for h in r.json()), r.out

    r = _diag(c, "-w", "json", "members", env={"DIAG_USER": "root", "DIAG_PASSWORD": "rootpw"})
    codes["members env"] = r.code
    assert r.code == ExitCode.OK, r.err
    want = etcdctl_json(c, "--user=root:rootpw", "member", "list", version="3.6")
    assert sorted(m["id"] for m in r.json()["members"]) == sorted(
        f"{m['ID']:x}" for m in want["members"])

    r = _diag(c, *ROOT, "-w", "json", "check", "--window", "1s")  # not the 30 s default
    # a slow disk on a busy machine may fire the fsync warning: no auth matter
    assert r.code == r.json()["exit_code"] <= ExitCode.WARNING, (r.out, r.err)
    codes["check root"] = ExitCode.OK
    rules = {f["rule"] for f in r.json()["findings"] if f["severity"] != "OK"}
    assert not rules & {"metrics", "member-unreachable", "unreachable"}, r.out
    return codes


def test_diag_with_auth_on_raftkv_and_etcd(tmp_path: Path) -> None:
    got = {}
    for name, cluster in (("raftkv", raftkv_cluster(tmp_path / "raftkv", 3)),
                          ("etcd", Cluster(tmp_path / "etcd", 3, binary=etcd36_bin()))):
        for c in running(cluster):
            got[name] = _session(c)
    assert got["raftkv"] == got["etcd"]
    assert got["etcd"] == {
        "auth-off --user": 0, "no user": ExitCode.AUTH_REQUIRED,
        "wrong password": ExitCode.AUTH_FAILED, "no password": ExitCode.USAGE,
        "status root": 0, "health alice --password": 0, "members env": 0, "check root": 0,
    }
