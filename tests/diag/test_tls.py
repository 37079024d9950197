"""diag against etcd 3.6.16 run as kubeadm runs it, and against raftkv with the same flags
and certificates: mutual TLS on client, metrics and peer ports. Each TLS failure gets its
own exit code and sentence (unknown CA, client certificate required, client certificate
rejected, hostname mismatch, expired), the same for both servers, and etcdctl 3.6.16 with
the same certificates fails too; with good certificates status/health/members agree with
etcdctl, fsync reads https /metrics from a bare base URL, and check is OK. (raftkv refuses
to start with an expired server certificate, so that case is etcd's only.)

The hostname mismatch is real: each member also listens on 127.0.0.2 (loopback too),
which its certificate (DNS:localhost, IP:127.0.0.1) does not name.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkv.diag.exitcodes import ExitCode
from tests.diag.certs import Certs, Pair, make_certs
from tests.diag.conftest import DiagResult, run_diag
from tests.support.etcd import Cluster, Member, etcd_bin, raftkv_bin
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real etcd processes

OTHER_HOST = "127.0.0.2"  # loopback, not in the server certificate


def _https(m: Member, host: str = "127.0.0.1", metrics: bool = False) -> str:
    return f"https://{host}:{m.metrics_port if metrics else m.client_port}"


SERVERS = ["etcd", "raftkv"]


def _binary(server: str) -> Path:
    return etcd_bin("etcd", "3.6") if server == "etcd" else raftkv_bin()


def tls_cluster(workdir: Path, certs: Certs, size: int, server: Pair | None = None,
                binary: Path | None = None) -> Cluster:
    """etcd 3.6.16 (or ``binary``, raftkv) with mTLS everywhere; returns once etcdctl (with
    certs) finds it healthy."""
    c = Cluster(workdir, size=size, binary=binary or etcd_bin("etcd", "3.6"),
                extra_args=certs.server_args(server),
                peer_url_for=lambda m: f"https://127.0.0.1:{m.peer_port}")
    for m in c.members:
        # Cluster builds http URLs; etcd takes the last of a repeated flag.
        m.extra_args += [
            f"--listen-client-urls={_https(m)},{_https(m, OTHER_HOST)}",
            f"--advertise-client-urls={_https(m)}",
            f"--listen-peer-urls=https://127.0.0.1:{m.peer_port}",
            f"--listen-metrics-urls={_https(m, metrics=True)},"
            f"{_https(m, OTHER_HOST, metrics=True)}",
        ]
    c.workdir.mkdir(parents=True, exist_ok=True)
    for m in c.members:
        c.start_member(m)
    try:
        # An expired server certificate fails every check; started is all we wait for then.
        ready = certs.client_args() + (["--insecure-skip-tls-verify"] if server else [])
        wait_until(lambda: ctl(c, *ready, "endpoint", "health", check=False).returncode == 0,
                   60, "mTLS etcd healthy (etcdctl with certificates)")
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    return c


# etcdctl refused too: a failed handshake is retried until the command timeout (5 s)
FAIL_FAST = "--command-timeout=2s"


def ctl(c: Cluster, *args: str, check: bool = True, endpoints: list[str] | None = None
        ) -> Any:
    return c.etcdctl(*args, version="3.6", check=check,
                     endpoints=endpoints or [_https(m) for m in c.members])


def ctl_json(c: Cluster, certs: Certs, *args: str) -> Any:
    return json.loads(ctl(c, *certs.client_args(), "-w", "json", *args).stdout)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module", params=SERVERS)
def mtls(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         certs: Certs) -> Iterator[Cluster]:
    """Three members of etcd 3.6.16 or raftkv: every test on it runs against both, with the
    same certificates, and must give the same exit code and sentence."""
    c = tls_cluster(tmp_path_factory.mktemp(f"mtls-{request.param}"), certs, 3,
                    binary=_binary(request.param))
    yield c
    c.stop()


def _eps(c: Cluster) -> str:
    return ",".join(_https(m) for m in c.members)


def _metrics(c: Cluster) -> str:
    return ",".join(_https(m, metrics=True) for m in c.members)  # bare base URLs


def diag(c: Cluster, certs: Certs, *args: str, tls: list[str] | None = None,
         member: Member | None = None, host: str = "127.0.0.1") -> DiagResult:
    """diag with the good certificates (unless ``tls``) on every member or on ``member``."""
    eps = _https(member, host) if member else _eps(c)
    metrics = _https(member, metrics=True) if member else _metrics(c)
    return run_diag("--endpoints", eps, "--metrics-urls", metrics,
                    *(certs.client_args() if tls is None else tls), *args)


def _one_line(r: DiagResult, code: ExitCode, *words: str) -> str:
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if ln]
    assert lines and all(ln.startswith("diag: ") for ln in lines), r.err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_unknown_ca(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    tls = certs.client_args(ca=certs.other_ca)
    r = diag(mtls, certs, "status", tls=tls, member=m)
    _one_line(r, ExitCode.TLS_UNKNOWN_CA, "TLS failure (unknown CA)",
              f"--cacert {certs.other_ca}")
    assert ctl(mtls, FAIL_FAST, *tls, "endpoint", "status", endpoints=[_https(m)],
               check=False).returncode != 0


def test_client_certificate_required(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    tls = ["--cacert", str(certs.ca)]
    for cmd in ("status", "health", "members"):
        r = diag(mtls, certs, cmd, tls=tls, member=m)
        _one_line(r, ExitCode.TLS_CLIENT_CERT_REQUIRED, "client certificate required",
                  "--cert and --key")
    assert ctl(mtls, FAIL_FAST, *tls, "endpoint", "status", endpoints=[_https(m)],
               check=False).returncode != 0


def test_client_certificate_from_another_ca(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    tls = certs.client_args(client=certs.other_client)
    r = diag(mtls, certs, "status", tls=tls, member=m)
    _one_line(r, ExitCode.TLS_CLIENT_CERT_REJECTED, "client certificate rejected",
              str(certs.other_client.cert))
    assert ctl(mtls, FAIL_FAST, *tls, "endpoint", "status", endpoints=[_https(m)],
               check=False).returncode != 0


def test_hostname_mismatch(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    r = diag(mtls, certs, "status", member=m, host=OTHER_HOST)
    _one_line(r, ExitCode.TLS_HOSTNAME_MISMATCH, "hostname mismatch", OTHER_HOST,
              "IP Address:127.0.0.1")
    assert ctl(mtls, FAIL_FAST, *certs.client_args(), "endpoint", "status",
               endpoints=[_https(m, OTHER_HOST)], check=False).returncode != 0


def test_expired_client_certificate(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    tls = certs.client_args(client=certs.expired_client)
    r = diag(mtls, certs, "status", tls=tls, member=m)
    _one_line(r, ExitCode.TLS_CERT_EXPIRED, "certificate expired",
              str(certs.expired_client.cert))
    assert ctl(mtls, FAIL_FAST, *tls, "endpoint", "status", endpoints=[_https(m)],
               check=False).returncode != 0


def test_plain_text_to_the_tls_port(mtls: Cluster, certs: Certs) -> None:
    m = mtls.members[0]
    r = run_diag("--endpoints", f"127.0.0.1:{m.client_port}", "status")
    _one_line(r, ExitCode.TLS_FAILURE, "serves TLS", "https://")


def test_https_metrics_failures_are_named_too(mtls: Cluster, certs: Certs) -> None:
    """The client port is fine, the metrics URL names a host its certificate lacks."""
    m = mtls.members[0]
    r = run_diag("--endpoints", _https(m), "--metrics-urls",
                 _https(m, OTHER_HOST, metrics=True), *certs.client_args(), "status")
    _one_line(r, ExitCode.TLS_HOSTNAME_MISMATCH, "metrics", OTHER_HOST)
    r = run_diag("--endpoints", _https(m), "--metrics-urls", _https(m, metrics=True),
                 "--cacert", str(certs.ca), "fsync", "--lifetime")
    assert r.code == ExitCode.TLS_CLIENT_CERT_REQUIRED, r.err  # no --cert: no https metrics


def test_raftkv_refuses_to_start_with_an_expired_certificate(tmp_path: Path,
                                                             certs: Certs) -> None:
    """etcd serves an expired certificate (diag then says so, below); raftkv refuses it at
    startup, with one sentence and exit code 2, so there is nothing for diag to see."""
    c = Cluster(tmp_path / "raftkv", size=1, binary=raftkv_bin(),
                extra_args=certs.server_args(certs.expired_server))
    m = c.members[0]
    m.extra_args = [f"--listen-client-urls={_https(m)}", f"--advertise-client-urls={_https(m)}"]
    c.workdir.mkdir(parents=True)
    try:
        c.start_member(m)
        proc = m.proc
        assert proc is not None and proc.popen is not None
        assert proc.popen.wait(timeout=30) == 2
        assert "expired" in proc.log_tail() and "Traceback" not in proc.log_tail()
    finally:
        c.stop()


def test_expired_server_certificate(tmp_path: Path, certs: Certs) -> None:
    c = tls_cluster(tmp_path / "expired", certs, 1, server=certs.expired_server)
    try:
        r = diag(c, certs, "status")
        _one_line(r, ExitCode.TLS_CERT_EXPIRED, "server's certificate has expired")
        assert ctl(c, FAIL_FAST, *certs.client_args(), "endpoint", "status",
                   check=False).returncode != 0
    finally:
        c.stop()


# --- good certificates: diag agrees with etcdctl ---------------------------------------


def test_status_health_members_agree_with_etcdctl(mtls: Cluster, certs: Certs) -> None:
    want = {f"{e['Status']['header']['member_id']:x}": e
            for e in ctl_json(mtls, certs, "endpoint", "status")}
    r = diag(mtls, certs, "-w", "json", "status")
    assert r.code == 0 and r.err == "", r.err  # https /metrics read with the client cert
    rows = r.json()["endpoints"]
    assert len(rows) == 3
    for row in rows:
        e = want[row["id"]]
        s = e["Status"]
        assert row["endpoint"] == e["Endpoint"].removeprefix("https://")
        assert (row["leader"], row["raft_term"], row["version"]) == (
            f"{s['leader']:x}", s["raftTerm"], s["version"])
        assert row["wal_fsync_p99_seconds"] is not None
    assert r.json()["cluster"]["agree"] is True

    health = ctl_json(mtls, certs, "endpoint", "health")
    r = diag(mtls, certs, "-w", "json", "health")
    assert r.code == 0, r.err
    assert {h["endpoint"]: h["health"] for h in r.json()} == {
        h["endpoint"].removeprefix("https://"): h["health"] for h in health}

    members = ctl_json(mtls, certs, "member", "list")
    r = diag(mtls, certs, "-w", "json", "members")
    assert r.code == 0, r.err
    assert sorted((m["id"], tuple(m["peer_urls"]), tuple(m["client_urls"]))
                  for m in r.json()["members"]) == sorted(
        (f"{m['ID']:x}", tuple(m["peerURLs"]), tuple(m["clientURLs"]))
        for m in members["members"])


def _fsync_count(url: str, certs: Certs) -> float:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    with urllib.request.urlopen(f"{url}/metrics", context=ctx, timeout=5) as resp:
        text = resp.read().decode()
    (line,) = [ln for ln in text.splitlines()
               if ln.startswith("etcd_disk_wal_fsync_duration_seconds_count")]
    return float(line.split()[-1])


def test_fsync_and_check_over_https_metrics(mtls: Cluster, certs: Certs) -> None:
    before = [_fsync_count(_https(m, metrics=True), certs) for m in mtls.members]
    r = diag(mtls, certs, "-w", "json", "fsync", "--lifetime")
    after = [_fsync_count(_https(m, metrics=True), certs) for m in mtls.members]
    assert r.code == 0, r.err
    rows = r.json()
    assert [row["url"] for row in rows] == [f"{_https(m, metrics=True)}/metrics"
                                          for m in mtls.members]
    for row, lo, hi in zip(rows, before, after, strict=True):
        assert lo <= row["wal_fsync"]["observations"] <= hi and lo > 0

    r = diag(mtls, certs, "-w", "json", "check", "--window", "1s")  # not the 30 s default
    # Every member and every https /metrics was read: nothing unreachable or unreadable.
    # (A slow disk on a busy test machine may fire the fsync warning; that is no TLS matter.)
    assert r.code == r.json()["exit_code"] <= ExitCode.WARNING, (r.out, r.err)
    rules = {f["rule"] for f in r.json()["findings"] if f["severity"] != "OK"}
    assert not rules & {"metrics", "member-unreachable", "unreachable"}, r.out
