"""Differential test of etcd's Auth service: one etcdctl 3.6.16 user/role/permission script
against a raftkv cluster and an etcd 3.6.16 cluster must print the same transcript (exit
code, output, last line of errors; endpoints masked), permission-denied errors, auth
revisions and root rules included; and simple tokens die with the member that holds them:
after a restart the member refuses them ("invalid auth token") on raftkv as on etcd; with
``--client-cert-auth`` the certificate's CN is the user, on raftkv as on etcd."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster, running
from tests.support.pki import ClusterPKI, cluster_pki, issue

pytestmark = pytest.mark.slow  # real raftkv and etcd processes

ROOT, ALICE, BAD = "--user=root:rootpw", "--user=alice:alicepw", "--user=alice:wrong"
TXN_DENIED = 'value("app/1") = "v"\n\nput other 1\n\n\n'
TXN_OK = 'value("app/1") = "v"\n\nput app/2 w\nget app/1\n\n\n'

# (flags, args, stdin) in order
SCRIPT: list[tuple[list[str], list[str], str | None]] = [
    ([], ["auth", "status"], None),
    ([], ["auth", "enable"], None),  # no root user yet
    ([], ["user", "add", "root", "--new-user-password=rootpw"], None),
    ([], ["user", "add", "alice", "--new-user-password=alicepw"], None),
    ([], ["user", "add", "alice", "--new-user-password=x"], None),
    ([], ["role", "add", "app"], None),
    ([], ["role", "add", "app"], None),
    ([], ["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"], None),
    ([], ["role", "grant-permission", "app", "read", "ro/", "--prefix=true"], None),
    ([], ["role", "grant-permission", "app", "write", "wo"], None),
    ([], ["role", "grant-permission", "app", "read", "k1", "k5"], None),
    ([], ["role", "grant-permission", "app", "read", "from/", "--from-key"], None),
    ([], ["role", "grant-permission", "nope", "read", "x"], None),
    ([], ["user", "grant-role", "alice", "app"], None),
    ([], ["user", "add", "nopw", "--no-password"], None),
    ([], ["user", "grant-role", "nopw", "app"], None),
    ([], ["user", "grant-role", "alice", "nope"], None),
    ([], ["user", "get", "alice"], None),
    ([], ["role", "get", "app"], None),
    ([], ["role", "list"], None),
    ([], ["user", "list"], None),
    ([], ["auth", "status"], None),
    ([], ["auth", "enable"], None),  # etcdctl adds the root role and grants it to root
    ([], ["auth", "status"], None),
    ([], ["put", "x", "1"], None),
    ([], ["get", "x"], None),
    ([ALICE], ["put", "app/1", "v"], None),
    ([ALICE], ["put", "other", "v"], None),
    ([ALICE], ["get", "app/", "--prefix"], None),
    ([ALICE], ["get", "ro/a"], None),
    ([ALICE], ["put", "ro/a", "1"], None),
    ([ALICE], ["put", "wo", "1"], None),
    ([ALICE], ["get", "wo"], None),
    ([ALICE], ["get", "k1", "k5"], None),
    ([ALICE], ["get", "k1", "k6"], None),
    ([ALICE], ["get", "from/x", "--from-key"], None),
    ([ALICE], ["get", "", "--prefix"], None),
    ([ALICE], ["put", "app/3", "v", "--prev-kv"], None),
    ([ALICE], ["del", "wo", "--prev-kv"], None),
    ([ALICE], ["txn"], TXN_DENIED),
    ([ALICE], ["txn"], TXN_OK),
    ([BAD], ["get", "app/1"], None),
    (["--user=nopw:x"], ["get", "app/1"], None),  # a no-password user cannot log in
    ([ALICE], ["user", "list"], None),
    ([ALICE], ["user", "get", "alice"], None),
    ([ALICE], ["user", "get", "root"], None),
    ([ALICE], ["role", "get", "app"], None),
    ([ALICE], ["role", "get", "root"], None),
    ([ALICE], ["auth", "status"], None),
    ([ALICE], ["role", "add", "evil"], None),
    ([ALICE], ["defrag"], None),
    ([ALICE], ["compaction", "1"], None),
    ([ALICE], ["member", "add", "x", "--peer-urls=http://127.0.0.1:1"], None),
    ([ALICE], ["alarm", "list"], None),
    ([ROOT], ["user", "list"], None),
    ([ROOT], ["role", "get", "root"], None),
    ([ROOT], ["user", "get", "root"], None),
    ([ROOT], ["user", "delete", "root"], None),
    ([ROOT], ["user", "revoke-role", "root", "root"], None),
    ([ROOT], ["role", "delete", "root"], None),
    ([ROOT], ["get", "", "--prefix"], None),
    ([ROOT], ["role", "revoke-permission", "app", "wo"], None),
    ([ROOT], ["role", "revoke-permission", "app", "wo"], None),
    ([ROOT], ["user", "revoke-role", "alice", "nope"], None),
    ([ROOT], ["user", "revoke-role", "alice", "app"], None),
    ([ALICE], ["get", "app/1"], None),
    ([ROOT], ["user", "passwd", "alice", "--interactive=false"], "newpw\n"),
    ([ALICE], ["get", "app/1"], None),  # the old password no longer works
    (["--user=alice:newpw"], ["get", "app/1"], None),
    ([ROOT], ["role", "delete", "app"], None),
    ([ROOT], ["user", "delete", "alice"], None),
    ([ALICE], ["get", "app/1"], None),
    ([ROOT], ["auth", "status"], None),
    ([ROOT], ["auth", "disable"], None),
    ([], ["auth", "status"], None),
    ([], ["put", "x", "2"], None),
    ([], ["role", "list"], None),
]

_ENDPOINT = re.compile(r"127\.0\.0\.1:\d+")
_DURATION = re.compile(r"\d+(\.\d+)?(ns|µs|ms|s)\b")


def _mask(text: str) -> str:
    return _DURATION.sub("D", _ENDPOINT.sub("EP", text))


def _last_error(stderr: str) -> str:
    """etcdctl's error: its last line that is not a JSON log record (those carry times)."""
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("{")]
    return _mask(lines[-1]) if lines else ""


def run_script(c: Cluster) -> list[tuple[int, str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}  # 3.6 warns on it
    out = []
    for flags, args, stdin in SCRIPT:
        argv = [str(etcd36_bin("etcdctl")), f"--endpoints={c.endpoints[0]}",
                "--command-timeout=10s", *flags, *args]
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                           timeout=60)
        out.append((p.returncode, _mask(p.stdout.strip()), _last_error(p.stderr)))
    return out


@pytest.fixture
def raftkv1(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(raftkv_cluster(tmp_path / "raftkv", 1))


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(Cluster(tmp_path / "etcd", 1, binary=etcd36_bin()))


def test_etcdctl_auth_script_gives_etcds_transcript(raftkv1: Cluster, etcd1: Cluster) -> None:
    ours, theirs = run_script(raftkv1), run_script(etcd1)
    diffs = [f"etcdctl {' '.join(f + a)}\n  raftkv: {x}\n  etcd:   {y}"
             for (f, a, _), x, y in zip(SCRIPT, ours, theirs, strict=True) if x != y]
    assert not diffs, f"{len(diffs)} of {len(SCRIPT)} commands differ:\n" + "\n".join(diffs)
    denied = sum(1 for _, _, e in theirs if "permission denied" in e)
    assert denied >= 10, theirs  # the script must exercise refusals, or it proves little


def _setup_alice(c: Cluster) -> None:
    for args in (["user", "add", "root", "--new-user-password=rootpw"],
                 ["user", "add", "alice", "--new-user-password=alicepw"],
                 ["role", "add", "app"],
                 ["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"],
                 ["user", "grant-role", "alice", "app"], ["auth", "enable"]):
        subprocess.run([str(etcd36_bin("etcdctl")), f"--endpoints={c.endpoints[0]}", *args],
                       check=True, capture_output=True, timeout=60)


def _get(endpoint: str, token: str) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as ch:
        try:
            rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"app/1"), timeout=10,
                                          metadata=(("token", token),))
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _token(endpoint: str) -> str:
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as ch:
        resp = rpc_pb2_grpc.AuthStub(ch).Authenticate(
            rpc_pb2.AuthenticateRequest(name="alice", password="alicepw"), timeout=10)
    return str(resp.token)


@pytest.mark.parametrize(("server", "how"), [("raftkv", "term"), ("etcd", "term"),
                                            ("raftkv", "kill")])
def test_tokens_are_invalid_after_the_member_restarts(tmp_path: Path, server: str,
                                                      how: str) -> None:
    c = (raftkv_cluster(tmp_path / "c", 3) if server == "raftkv"
         else Cluster(tmp_path / "c", 3, binary=etcd36_bin()))
    for _ in running(c):
        _setup_alice(c)
        m0 = c.members[0]
        token = _token(m0.client_url)
        assert _get(m0.client_url, token) == (grpc.StatusCode.OK, "")
        assert _get(m0.client_url, "nonsense.1") == (
            grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
        # etcd, killed (SIGKILL), may replay the Authenticate entry from its WAL and know
        # the token again; raftkv gives no token on replay, so it is also tried killed
        assert m0.proc is not None
        if how == "kill":
            c.restart(m0)
        else:
            m0.proc.stop()
            c.start_member(m0, state="existing")
        c.wait_healthy()
        assert _get(m0.client_url, token) == (
            grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
        # a fresh token works again
        assert _get(m0.client_url, _token(m0.client_url)) == (grpc.StatusCode.OK, "")


# --- the client certificate's CN as the user (--client-cert-auth with auth on) ----------

CN_SETUP = [["user", "add", "root", "--new-user-password=rootpw"],
            ["user", "add", "alice", "--new-user-password=alicepw"], ["role", "add", "app"],
            ["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"],
            ["user", "grant-role", "alice", "app"], ["auth", "enable"]]
# (certificate, flags, args): "client" is CN=root, "alice" CN=alice, "nobody" CN=nobody
CN_SCRIPT: list[tuple[str, list[str], list[str]]] = [
    ("alice", [], ["put", "app/1", "v"]),
    ("alice", [], ["put", "other", "v"]),
    ("alice", [], ["get", "app/1"]),
    ("alice", [], ["user", "list"]),
    ("client", [], ["user", "list"]),
    ("client", [], ["put", "other", "v"]),
    ("nobody", [], ["put", "app/2", "v"]),
    ("nobody", [], ["get", "app/1"]),
    ("nobody", [ALICE], ["put", "app/3", "v"]),  # a token wins over the certificate
    ("alice", [BAD], ["get", "app/1"]),
]


def _cn_transcript(c: Cluster, pki: ClusterPKI) -> list[tuple[int, str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}  # 3.6 warns on it

    def ctl(cert: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(etcd36_bin("etcdctl")), f"--endpoints={c.endpoints[0]}",
             "--command-timeout=10s", "--cacert", str(pki.crt(pki.ca)),
             "--cert", str(pki.crt(cert)), "--key", str(pki.key(cert)), *args],
            capture_output=True, text=True, env=env, timeout=60)

    for args in CN_SETUP:
        assert ctl("client", *args).returncode == 0, args
    out = []
    for cert, flags, args in CN_SCRIPT:
        p = ctl(cert, *flags, *args)
        out.append((p.returncode, _mask(p.stdout.strip()), _last_error(p.stderr)))
    return out


def test_client_certificate_cn_is_the_user_as_with_etcd(tmp_path: Path) -> None:
    pki = cluster_pki(tmp_path / "pki")
    issue(pki.dir, pki.ca, "alice", "/CN=alice", usage="client")
    issue(pki.dir, pki.ca, "nobody", "/CN=nobody", usage="client")
    got = {}
    for name, binary in (("raftkv", None), ("etcd", etcd36_bin())):
        c = (raftkv_cluster(tmp_path / name, 1, pki=pki) if binary is None
             else Cluster(tmp_path / name, 1, binary=binary, pki=pki))
        for _ in running(c):
            got[name] = _cn_transcript(c, pki)
    diffs = [f"{cert} etcdctl {' '.join(f + a)}\n  raftkv: {x}\n  etcd:   {y}"
             for (cert, f, a), x, y in zip(CN_SCRIPT, got["raftkv"], got["etcd"], strict=True)
             if x != y]
    assert not diffs, "\n".join(diffs)
    assert sum(1 for _, _, e in got["etcd"] if "permission denied" in e) >= 3
