"""TLS on real clusters (issue 13): raftkv and etcd 3.6.16 with the same certificates.

- etcdctl 3.6.16 with ``--cacert/--cert/--key`` gets the same answers from a three-member
  raftkv cluster and a three-member etcd cluster, both with mutual TLS on the client and
  peer ports; without a client certificate, with the wrong CA, or in plain text both
  refuse;
- a member whose peer certificate comes from another CA never joins (its peers refuse
  it in the handshake); restarted with the right certificate it catches up;
- rotation: the certificate files of a member are replaced; new client and peer
  connections get the new certificates, with no restart and no leader change;
- metrics over https want the client certificate; ``--auto-tls`` serves a self-signed
  certificate.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.ctlerr import CtlError, ctl_error
from tests.support.etcd import (
    Cluster,
    Member,
    etcd36_bin,
    raftkv_bin,
    raftkv_cluster,
    running,
)
from tests.support.pki import ClusterPKI, cluster_pki, issue, make_ca
from tests.support.proc import Proc, free_port, wait_until

pytestmark = pytest.mark.slow  # real clusters

TXN = 'value("a") = "1"\n\nput a 10\nget a\n\nput a 0\n\n'
SCRIPT: list[tuple[list[str], str | None]] = [
    (["put", "a", "1"], None),
    (["put", "b", "2", "--prev-kv"], None),
    (["put", "b", "3", "--prev-kv"], None),
    (["get", "", "--prefix"], None),
    (["get", "a", "--rev=1"], None),
    (["txn"], TXN),
    (["del", "b", "--prev-kv"], None),
    (["get", "", "--prefix", "--count-only"], None),  # (etcdctl's own usage error)
    (["compaction", "2"], None),
    (["get", "a", "--rev=1"], None),
]
IGNORED = {"cluster_id", "member_id", "raft_term"}


def etcdctl(c: Cluster, *args: str, endpoints: list[str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}  # 3.6 warns on it
    eps = ",".join(endpoints or c.endpoints)
    return subprocess.run([str(etcd36_bin("etcdctl")), f"--endpoints={eps}",
                           "--command-timeout=5s", "--dial-timeout=3s", *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)


def _normalize(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _normalize(v) for k, v in x.items() if k not in IGNORED}
    if isinstance(x, list):
        return [_normalize(v) for v in x]
    return x


def run_script(c: Cluster, pki: ClusterPKI) -> list[tuple[int, Any, CtlError]]:
    out = []
    for args, stdin in SCRIPT:
        fmt = ["-w=json"] if args[0] in ("put", "get", "del", "txn") else []
        p = etcdctl(c, *pki.etcdctl_args(), *fmt, *args, stdin=stdin)
        body: Any = p.stdout.strip()
        if body.startswith("{"):
            body = _normalize(json.loads(body))
        out.append((p.returncode, body, ctl_error(p.stderr)))
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    out = cluster_pki(tmp_path_factory.mktemp("pki"))
    make_ca(out.dir, "other-ca", "another CA")
    issue(out.dir, "other-ca", "stranger", "/CN=raftkv-peer", usage="peer")
    issue(out.dir, "other-ca", "stranger-client", "/CN=root", usage="client")
    return out


@pytest.fixture(scope="module")
def raftkv_tls(tmp_path_factory: pytest.TempPathFactory, pki: ClusterPKI) -> Iterator[Cluster]:
    yield from running(raftkv_cluster(tmp_path_factory.mktemp("raftkv-tls"), 3, pki=pki))


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory, pki: ClusterPKI) -> Iterator[Cluster]:
    yield from running(Cluster(tmp_path_factory.mktemp("etcd-tls"), 3, binary=etcd36_bin(),
                               pki=pki, extra_args=["--unsafe-no-fsync"]))


def test_etcdctl_gets_the_same_answers(raftkv_tls: Cluster, etcd_tls: Cluster,
                                       pki: ClusterPKI) -> None:
    ours, theirs = run_script(raftkv_tls, pki), run_script(etcd_tls, pki)
    diffs = [f"etcdctl {' '.join(args)}\n  raftkv: {a}\n  etcd:   {b}"
             for (args, _), a, b in zip(SCRIPT, ours, theirs, strict=True) if a != b]
    assert not diffs, "\n".join(diffs)
    # over TLS the script worked, and its one server error came back the same
    assert [rc for rc, _, _ in theirs] == [0] * 7 + [128, 0, 1], theirs
    assert theirs[-1][2] == (("Error: etcdserver: mvcc: required revision has been compacted",),
                             ("OutOfRange",)), theirs[-1]
    for c in (raftkv_tls, etcd_tls):
        health = etcdctl(c, *pki.etcdctl_args(), "endpoint", "health", "-w=json")
        assert health.returncode == 0, health.stderr
        assert [h["health"] for h in json.loads(health.stdout)] == [True] * 3
        members = etcdctl(c, *pki.etcdctl_args(), "member", "list", "-w=json")
        peer_urls = sorted(u for m in json.loads(members.stdout)["members"]
                           for u in m["peerURLs"])
        assert peer_urls == sorted(m.peer_url for m in c.members)
        assert all(u.startswith("https://") for u in peer_urls)


@pytest.mark.parametrize("how", ["no-client-cert", "other-ca-client-cert", "wrong-server-ca",
                                 "plain-text"])
def test_both_refuse(raftkv_tls: Cluster, etcd_tls: Cluster, pki: ClusterPKI,
                     how: str) -> None:
    ca = ["--cacert", str(pki.crt(pki.ca))]
    args = {
        "no-client-cert": ca,
        "other-ca-client-cert": [*ca, "--cert", str(pki.crt("stranger-client")),
                                 "--key", str(pki.key("stranger-client"))],
        "wrong-server-ca": ["--cacert", str(pki.crt("other-ca")), "--cert",
                            str(pki.crt(pki.client)), "--key", str(pki.key(pki.client))],
        "plain-text": [],
    }[how]
    for c in (raftkv_tls, etcd_tls):
        eps = ([m.client_url.replace("https://", "http://") for m in c.members[:1]]
               if how == "plain-text" else c.endpoints[:1])
        r = etcdctl(c, *args, "get", "a", endpoints=eps)
        assert r.returncode != 0 and r.stdout == "", (c.binary, r.stdout, r.stderr)


def _tls_server_cert(port: int, pki: ClusterPKI, client: bool = True) -> bytes:
    """The DER certificate a TLS port serves to a client holding ``pki``'s client pair."""
    ctx = pki.client_context() if client else ssl.create_default_context(
        cafile=str(pki.crt(pki.ca)))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        der = s.getpeercert(binary_form=True)
        assert der is not None
        return der


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _leader(c: Cluster, pki: ClusterPKI) -> tuple[int, int]:
    r = etcdctl(c, *pki.etcdctl_args(), "endpoint", "status", "-w=json")
    assert r.returncode == 0, r.stderr
    st = [e["Status"] for e in json.loads(r.stdout)]
    return st[0]["leader"], st[0]["raftTerm"]


def test_a_peer_from_another_ca_never_joins(tmp_path: Path, pki: ClusterPKI) -> None:
    c = raftkv_cluster(tmp_path / "c", 3, pki=pki)
    bad = c.members[2]
    bad.extra_args = [f"--peer-cert-file={pki.crt('stranger')}",
                      f"--peer-key-file={pki.key('stranger')}",
                      f"--peer-trusted-ca-file={pki.crt('other-ca')}"]
    c.workdir.mkdir(parents=True)
    try:
        for m in c.members:
            c.start_member(m)
        c.wait_healthy(60, members=c.members[:2])
        put = etcdctl(c, *pki.etcdctl_args(), "put", "k", "v", endpoints=c.endpoints[:2])
        assert put.returncode == 0, put.stderr
        # Observed for 20 election timeouts (10 s), checking all along: the stranger never
        # learns of a leader, so it never gets the log (its peers refuse it, it them).
        deadline = time.monotonic() + 20 * 0.5
        checks = 0
        while time.monotonic() < deadline:
            assert not bad.health(), c.logs()
            got = etcdctl(c, *pki.etcdctl_args(), "get", "k", "--consistency=s",
                          endpoints=[bad.client_url])
            assert got.returncode == 0 and got.stdout == "", (got.stdout, got.stderr)
            checks += 1
        assert checks >= 5 and c.members[0].health()
        # control: the same member with the cluster's peer certificate joins and catches up
        assert bad.proc is not None
        bad.proc.stop()
        bad.extra_args = []
        c.start_member(bad, state="existing")
        wait_until(lambda: etcdctl(c, *pki.etcdctl_args(), "get", "k", "--consistency=s",
                                   "--print-value-only", endpoints=[bad.client_url]
                                   ).stdout.strip() == "v", 60, "the member to catch up")
    finally:
        c.stop()


def _replace(src: Path, dst: Path) -> None:
    """As kubelet and cert-manager do: write a new file, then rename it over the old."""
    tmp = dst.with_name(f".{dst.name}.new")
    tmp.write_bytes(src.read_bytes())
    tmp.rename(dst)


def test_rotation_without_restart_or_leader_change(tmp_path: Path, pki: ClusterPKI) -> None:
    own = tmp_path / "m0-certs"
    own.mkdir()
    for name in ("server", "peer"):
        for kind in ("crt", "key"):
            (own / f"{name}.{kind}").write_bytes((pki.dir / f"{name}.{kind}").read_bytes())
    c = raftkv_cluster(tmp_path / "c", 3, pki=pki)
    m0 = c.members[0]
    m0.extra_args = [f"--cert-file={own / 'server.crt'}", f"--key-file={own / 'server.key'}",
                     f"--peer-cert-file={own / 'peer.crt'}",
                     f"--peer-key-file={own / 'peer.key'}"]
    try:
        c.start()
        before = _leader(c, pki)
        pid = m0.proc.pid if m0.proc else None
        assert _tls_server_cert(m0.client_port, pki) == _der(pki.crt("server"))
        assert _tls_server_cert(m0.peer_port, pki) == _der(pki.crt("peer"))
        issue(pki.dir, pki.ca, "server2", "/CN=raftkv-server", usage="server")
        issue(pki.dir, pki.ca, "peer2", "/CN=raftkv-peer", usage="peer")
        for name, new in (("server", "server2"), ("peer", "peer2")):
            _replace(pki.key(new), own / f"{name}.key")
            _replace(pki.crt(new), own / f"{name}.crt")
        # the very next connections get the new certificates (files are stat'ed on each)
        assert _tls_server_cert(m0.client_port, pki) == _der(pki.crt("server2"))
        assert _tls_server_cert(m0.peer_port, pki) == _der(pki.crt("peer2"))
        put = etcdctl(c, *pki.etcdctl_args(), "put", "after", "rotation",
                      endpoints=[m0.client_url])
        assert put.returncode == 0, put.stderr
        got = etcdctl(c, *pki.etcdctl_args(), "get", "after", "--print-value-only")
        assert got.stdout.strip() == "rotation"
        assert _leader(c, pki) == before  # same leader, same term: nothing was disturbed
        assert m0.proc is not None and m0.proc.pid == pid and m0.proc.alive()
    finally:
        c.stop()


def test_https_metrics_want_the_client_certificate(tmp_path: Path, pki: ClusterPKI) -> None:
    c = raftkv_cluster(tmp_path / "c", 1, pki=pki, https_metrics=True)
    try:
        c.start()  # healthy via https /health with the client certificate
        m = c.members[0]
        assert m.metrics_url.startswith("https://")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _tls_server_cert(m.metrics_port, pki, client=False)
            # (TLS 1.3: the refusal arrives on the first read)
            ctx = ssl.create_default_context(cafile=str(pki.crt(pki.ca)))
            with socket.create_connection(("127.0.0.1", m.metrics_port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100) == b"":
                    raise ConnectionError("closed without an answer")
    finally:
        c.stop()


def test_auto_tls(tmp_path: Path) -> None:
    port, peer, metrics = free_port(), free_port(), free_port()
    data = tmp_path / "a.data"
    proc = Proc("auto", [str(raftkv_bin()), "--name=a", f"--data-dir={data}",
                         f"--listen-client-urls=https://127.0.0.1:{port}",
                         f"--advertise-client-urls=https://127.0.0.1:{port}",
                         f"--listen-peer-urls=https://127.0.0.1:{peer}",
                         f"--initial-advertise-peer-urls=https://127.0.0.1:{peer}",
                         f"--initial-cluster=a=https://127.0.0.1:{peer}",
                         f"--listen-metrics-urls=http://127.0.0.1:{metrics}",
                         "--auto-tls", "--peer-auto-tls"], tmp_path / "a.log").start()
    env = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}  # 3.6 warns on it
    try:
        def put() -> bool:
            assert proc.alive(), proc.log_tail()
            return subprocess.run(
                [str(etcd36_bin("etcdctl")), f"--endpoints=https://127.0.0.1:{port}",
                 "--insecure-skip-tls-verify", "--insecure-transport=false",
                 "--dial-timeout=2s", "put", "k", "v"],
                capture_output=True, text=True, env=env, timeout=30).returncode == 0
        wait_until(put, 60, "a put over auto TLS")
        cert = data / "fixtures" / "client" / "cert.pem"
        assert _der(cert) == _tls_server_cert_insecure(port)
        assert (data / "fixtures" / "peer" / "cert.pem").is_file()
    finally:
        proc.stop()


def _tls_server_cert_insecure(port: int) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_a_member_added_over_tls_joins(tmp_path: Path, pki: ClusterPKI) -> None:
    """MemberAdd, then the new member discovers the cluster over the TLS peer port."""
    c = raftkv_cluster(tmp_path / "c", 1, pki=pki)
    try:
        c.start()
        new = Member("m1", tmp_path / "m1.data", free_port(), free_port(), free_port(),
                     health_on_metrics=True, scheme="https", tls=pki.client_context())
        add = etcdctl(c, *pki.etcdctl_args(), "member", "add", "m1",
                      f"--peer-urls={new.peer_url}")
        assert add.returncode == 0, add.stderr
        c.members.append(new)  # stopped by pid with the other at teardown
        c.start_member(new, state="existing")
        c.wait_healthy(60, members=[new])
        put = etcdctl(c, *pki.etcdctl_args(), "put", "k", "v", endpoints=[new.client_url])
        assert put.returncode == 0, put.stderr  # a quorum of two: the new member is in it
        got = etcdctl(c, *pki.etcdctl_args(), "get", "k", "--consistency=s",
                      "--print-value-only", endpoints=[new.client_url])
        assert got.stdout.strip() == "v"
    finally:
        c.stop()


def test_cipher_suites_reach_the_grpc_port(tmp_path: Path, pki: ClusterPKI) -> None:
    """gRPC takes its cipher list from GRPC_SSL_CIPHER_SUITES only, before it loads: the
    raftkv command sets it from --cipher-suites (Go's names) before importing grpc."""
    c = raftkv_cluster(tmp_path / "c", 1, pki=pki, extra_args=[
        "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    try:
        c.start()
        port = c.members[0].client_port

        def cipher(name: str) -> str:
            ctx = pki.client_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(name)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                got = s.cipher()
                assert got is not None
                return got[0]

        assert cipher("ECDHE-ECDSA-AES256-GCM-SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cipher("ECDHE-ECDSA-AES128-GCM-SHA256")
    finally:
        c.stop()
