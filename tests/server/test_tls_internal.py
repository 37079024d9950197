"""A member's own calls to other members' https client ports (issue 13): three raftkv
members with mutual TLS and ``--client-cert-auth`` on both ports, auth enabled.

- a lease keep-alive and time-to-live sent to a follower reach the leader over TLS with
  the caller's token (alice's: the follower's own certificate names no user);
- member update and promote sent to a follower are forwarded to the leader over TLS
  (member add and list work on the follower too), also right after root's password
  changed or auth went off and on (the follower's root token is then a new one);
- the periodic corruption check gets its peers' HashKV over TLS and raises CORRUPT;
- ``--experimental-initial-corrupt-check`` compares with its peers over TLS and refuses
  to start on a mismatch.

Before the member dialed with its client-port credentials, every one of these failed:
the forwarded calls were UNAVAILABLE, the checks compared nothing and never alarmed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.server.test_hashkv import _set_value
from tests.support.etcd import Cluster, Member, etcd36_bin, raftkv_cluster, running
from tests.support.pki import ClusterPKI, cluster_pki
from tests.support.proc import free_port, wait_until

pytestmark = pytest.mark.slow  # real clusters

SETUP = (["user", "add", "root", "--new-user-password=rootpw"],
         ["user", "add", "alice", "--new-user-password=alicepw"],
         ["role", "add", "app"],
         ["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"],
         ["user", "grant-role", "alice", "app"], ["auth", "enable"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return cluster_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_auth(tmp_path: Path, pki: ClusterPKI) -> Iterator[Cluster]:
    """Three members, mutual TLS everywhere, auth on (etcdctl's client certificate is
    CN=root, so it acts as root), the corruption check every 300 ms."""
    c = raftkv_cluster(tmp_path / "c", 3, pki=pki, extra_args=["--corrupt-check-time=300ms"])
    for _ in running(c):
        for args in SETUP:
            r = ctl(c, pki, *args)
            assert r.returncode == 0, (args, r.stderr)
        yield c


def ctl(c: Cluster, pki: ClusterPKI, *args: str,
        endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(etcd36_bin("etcdctl")), f"--endpoints={endpoint or c.endpoints[0]}",
                           "--command-timeout=10s", *pki.etcdctl_args(), *args],
                          capture_output=True, text=True, timeout=60)


def _channel(pki: ClusterPKI, url: str) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(pki.crt(pki.ca).read_bytes(),
                                         pki.key(pki.client).read_bytes(),
                                         pki.crt(pki.client).read_bytes())
    return grpc.secure_channel(url.removeprefix("https://"), creds)


def _status(c: Cluster, pki: ClusterPKI, m: Member) -> dict[str, Any]:
    out = ctl(c, pki, "endpoint", "status", "-w=json", endpoint=m.client_url)
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)[0]["Status"]
    return status


def _member_id(c: Cluster, pki: ClusterPKI, m: Member) -> int:
    return int(_status(c, pki, m)["header"]["member_id"])


def _roles(c: Cluster, pki: ClusterPKI) -> tuple[Member, Member]:
    """(leader, a follower), from the members' own Status."""
    leader = follower = None
    for m in c.members:
        st = _status(c, pki, m)
        if st["leader"] == st["header"]["member_id"]:
            leader = m
        else:
            follower = m
    assert leader is not None and follower is not None
    return leader, follower


def test_follower_forwards_lease_calls_over_tls_with_the_callers_token(
        tls_auth: Cluster, pki: ClusterPKI) -> None:
    _, follower = _roles(tls_auth, pki)
    with _channel(pki, follower.client_url) as ch:
        token = rpc_pb2_grpc.AuthStub(ch).Authenticate(
            rpc_pb2.AuthenticateRequest(name="alice", password="alicepw"), timeout=10).token
        md = (("token", token),)
        lease = rpc_pb2_grpc.LeaseStub(ch).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60),
                                                      timeout=10, metadata=md)
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"app/k", value=b"v",
                                                       lease=lease.ID), timeout=10, metadata=md)
        ka = list(rpc_pb2_grpc.LeaseStub(ch).LeaseKeepAlive(
            iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease.ID)]), timeout=10, metadata=md))
        assert [(r.ID, r.TTL) for r in ka] == [(lease.ID, 60)]
        ttl = rpc_pb2_grpc.LeaseStub(ch).LeaseTimeToLive(
            rpc_pb2.LeaseTimeToLiveRequest(ID=lease.ID, keys=True), timeout=10, metadata=md)
        assert (ttl.grantedTTL, list(ttl.keys)) == (60, [b"app/k"])


def test_follower_forwards_member_calls_over_tls(tls_auth: Cluster, pki: ClusterPKI) -> None:
    c = tls_auth
    _, follower = _roles(c, pki)
    on = follower.client_url
    url = f"https://127.0.0.1:{free_port()}"
    add = ctl(c, pki, "member", "add", "m4", "--learner", f"--peer-urls={url}", endpoint=on)
    assert add.returncode == 0, add.stderr
    listed = json.loads(ctl(c, pki, "member", "list", "-w=json", endpoint=on).stdout)
    learner = next(m for m in listed["members"] if m.get("isLearner"))
    mid = f"{learner['ID']:x}"
    moved = f"https://127.0.0.1:{free_port()}"
    upd = ctl(c, pki, "member", "update", mid, f"--peer-urls={moved}", endpoint=on)
    assert upd.returncode == 0, upd.stderr
    after = json.loads(ctl(c, pki, "member", "list", "-w=json", endpoint=on).stdout)
    assert [m["peerURLs"] for m in after["members"] if m["ID"] == learner["ID"]] == [[moved]]
    # the learner never started: only the leader can tell, and it says so through TLS
    promote = ctl(c, pki, "member", "promote", mid, endpoint=on)
    assert promote.returncode != 0
    assert "can only promote a learner member which is in sync with leader" in promote.stderr
    assert ctl(c, pki, "member", "remove", mid, endpoint=on).returncode == 0


def _applied_everything(c: Cluster, pki: ClusterPKI, leader: Member, m: Member) -> None:
    index = _status(c, pki, leader)["raftIndex"]
    wait_until(lambda: _status(c, pki, m)["raftAppliedIndex"] >= index, 20,
               f"{m.name} applied up to {index}")


def test_forwarded_cn_calls_survive_roots_password_change(tls_auth: Cluster,
                                                          pki: ClusterPKI) -> None:
    """The follower forwards a CN=root caller's member call with a root token of its own;
    changing root's password (or auth off and on) drops that token on every member, and
    the next forwarded call must get a fresh one, not fail until the cache ages out."""
    c = tls_auth
    leader, follower = _roles(c, pki)
    on = follower.client_url
    add = ctl(c, pki, "member", "add", "m4", "--learner",
              f"--peer-urls=https://127.0.0.1:{free_port()}", endpoint=on)
    assert add.returncode == 0, add.stderr
    listed = json.loads(ctl(c, pki, "member", "list", "-w=json", endpoint=on).stdout)
    mid = f"{next(m for m in listed['members'] if m.get('isLearner'))['ID']:x}"

    def update() -> subprocess.CompletedProcess[str]:
        return ctl(c, pki, "member", "update", mid,
                   f"--peer-urls=https://127.0.0.1:{free_port()}", endpoint=on)

    first = update()  # forwarded: the follower mints and keeps its root token
    assert first.returncode == 0, first.stderr
    for change in (["user", "passwd", "root", "--interactive=false"],
                   ["auth", "disable"], ["auth", "enable"]):
        r = subprocess.run([str(etcd36_bin("etcdctl")), f"--endpoints={leader.client_url}",
                            "--command-timeout=10s", *pki.etcdctl_args(), *change],
                           input="newrootpw\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (change, r.stderr)
        _applied_everything(c, pki, leader, follower)
        again = update()
        assert again.returncode == 0, (change, again.stderr)


def test_periodic_corruption_check_over_tls(tls_auth: Cluster, pki: ClusterPKI) -> None:
    c = tls_auth
    for i in range(5):
        assert ctl(c, pki, "put", f"k{i}", f"v{i}").returncode == 0
    _, follower = _roles(c, pki)
    _set_value(follower.data_dir, b"k2", b"rot")  # behind the member's back
    wait_until(lambda: "alarm:CORRUPT" in ctl(c, pki, "alarm", "list").stdout, 30,
               "the CORRUPT alarm over TLS")
    alarms = ctl(c, pki, "alarm", "list").stdout
    assert f"memberID:{_member_id(c, pki, follower)} alarm:CORRUPT" in alarms, alarms


def test_initial_corruption_check_over_tls(tmp_path: Path, pki: ClusterPKI) -> None:
    c = raftkv_cluster(tmp_path / "c", 3, pki=pki)
    for _ in running(c):
        for i in range(10):
            assert ctl(c, pki, "put", f"k{i}", f"v{i}").returncode == 0
        m = c.members[2]

        def hashes() -> set[int]:
            out = json.loads(ctl(c, pki, "endpoint", "hashkv", "-w=json",
                                 "--cluster").stdout or "[]")
            return {h["HashKV"]["hash"] for h in out} if len(out) == 3 else set()

        wait_until(lambda: len(hashes()) == 1, 20, "members agree")
        assert m.proc is not None and m.proc.stop() == 0
        _set_value(m.data_dir, b"k4", b"rot")
        m.extra_args = ["--experimental-initial-corrupt-check"]
        c.start_member(m, state="existing")
        proc = m.proc
        assert proc is not None and proc.popen is not None
        assert proc.popen.wait(timeout=30) == 3, proc.log_tail()  # the corrupt member exits
        assert "found data inconsistency with peer" in proc.log_tail()


def test_auto_tls_members_dial_each_other(tmp_path: Path) -> None:
    """``--auto-tls``: no CA vouches for the peers' self-signed client-port certificates;
    a follower still forwards a keep-alive and the corruption check still compares (the
    dialer trusts the certificate each peer presents, as etcd skips verification there)."""
    c = raftkv_cluster(tmp_path / "c", 3,
                       extra_args=["--auto-tls", "--peer-auto-tls", "--corrupt-check-time=300ms"],
                       peer_url_for=lambda m: f"https://127.0.0.1:{m.peer_port}")
    for m in c.members:  # the metrics URLs stay http: the readiness checks read them
        url = f"https://127.0.0.1:{m.client_port}"
        m.extra_args = [f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                        f"--listen-peer-urls=https://127.0.0.1:{m.peer_port}"]

    def ctl(m: Member, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(etcd36_bin("etcdctl")),
                               f"--endpoints=https://127.0.0.1:{m.client_port}",
                               "--insecure-skip-tls-verify", "--insecure-transport=false",
                               "--command-timeout=10s", *args],
                              capture_output=True, text=True, timeout=60)

    for _ in running(c):
        statuses = {m.name: json.loads(ctl(m, "endpoint", "status", "-w=json").stdout)[0]
                    ["Status"] for m in c.members}
        follower = next(m for m in c.members
                        if statuses[m.name]["leader"] != statuses[m.name]["header"]["member_id"])
        grant = ctl(follower, "lease", "grant", "60")
        assert grant.returncode == 0, grant.stderr
        lease = grant.stdout.split()[1]
        ka = ctl(follower, "lease", "keep-alive", "--once", lease)
        assert ka.returncode == 0 and "TTL(60)" in ka.stdout, (ka.stdout, ka.stderr)
        for i in range(5):
            assert ctl(follower, "put", f"k{i}", f"v{i}").returncode == 0
        _set_value(follower.data_dir, b"k2", b"rot")
        wait_until(lambda: "alarm:CORRUPT" in ctl(c.members[0], "alarm", "list").stdout, 30,
                   "the CORRUPT alarm over auto TLS")
