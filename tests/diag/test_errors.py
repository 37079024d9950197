"""Bad endpoints: one clear stderr line each, the good endpoints still reported, a
distinct exit code per kind (unreachable, TLS, peer port, bad metrics), no traceback.
Also TLS and mutual TLS against a real etcd 3.5.1 started with client-cert-auth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkv.diag.app import run
from raftkv.diag.exitcodes import MEANING, ExitCode
from tests.diag.certs import Certs, make_certs
from tests.diag.conftest import etcdctl_json, run_diag
from tests.support.etcd import Cluster, etcd_bin
from tests.support.proc import free_port, wait_until


def _no_traceback(*texts: str) -> None:
    for t in texts:
        assert "Traceback" not in t


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.5", "3.4"])
def test_unreachable_and_peer_port(request: pytest.FixtureRequest, version: str) -> None:
    cluster: Cluster = request.getfixturevalue("etcd35" if version == "3.5" else "etcd34")
    good = cluster.members[0]
    dead = f"127.0.0.1:{free_port()}"
    peer = f"127.0.0.1:{cluster.members[1].peer_port}"
    r = run_diag("--endpoints", f"{dead},{good.client_url}", "-w", "json", "status")
    _no_traceback(r.out, r.err)
    assert r.code == 4
    assert [ln for ln in r.err.splitlines() if ln] == [
        ln for ln in r.err.splitlines() if ln.startswith(f"diag: {dead}: unreachable")]
    assert [row["endpoint"] for row in r.json()["endpoints"]] == [f"127.0.0.1:{good.client_port}"]
    assert r.json()["failures"][0]["kind"] == "UNREACHABLE"

    r = run_diag("--endpoints", f"{peer},{good.client_url}", "status")
    _no_traceback(r.out, r.err)
    assert r.code == 6, r.err
    (line,) = r.err.strip().splitlines()
    assert line.startswith(f"diag: {peer}: not an etcd client port") and "peer" in line
    assert str(good.client_port) in r.out

    r = run_diag("--endpoints", f"{peer},{good.client_url}", "members")
    assert r.code == 6 and "not an etcd client port" in r.err and "started" in r.out


@pytest.mark.slow
def test_metrics_url_not_prometheus_text(etcd35: Cluster) -> None:
    m = etcd35.members
    # etcd's /health answers JSON, not Prometheus text; the others are real /metrics.
    urls = [f"{m[0].client_url}/health", f"{m[1].metrics_url}/metrics",
            f"{m[2].client_url}/metrics"]
    r = run_diag("--endpoints", ",".join(etcd35.endpoints), "--metrics-urls", ",".join(urls),
                 "-w", "json", "status")
    _no_traceback(r.out, r.err)
    assert r.code == 8, r.err
    (line,) = r.err.strip().splitlines()
    assert "does not serve Prometheus text" in line and "/health" in line
    rows = r.json()["endpoints"]
    assert len(rows) == 3  # the member itself is still reported
    assert rows[0]["wal_fsync_p99_seconds"] is None
    r = run_diag("--endpoints", ",".join(etcd35.endpoints[:2]), "--metrics-urls",
                 ",".join(urls[:2]), "-w", "json", "fsync", "--lifetime")
    assert r.code == 8 and len(r.json()) == 1
    r = run_diag("--endpoints", etcd35.endpoints[0], "--metrics-urls",
                 f"http://127.0.0.1:{free_port()}/metrics", "fsync", "--lifetime")
    assert r.code == 4 and "unreachable" in r.err


@pytest.mark.parametrize("args", [
    ["--bogus", "status"], ["fsync", "--window", "ten"], ["--endpoints", "", "status"],
    ["--write-out", "yaml", "status"], ["--cert", "/x", "status"], ["nosuchcommand"],
    ["--dial-timeout", "-1s", "status"], ["check", "--db-quota-warn", "2"],
])
def test_usage_errors_have_their_own_code(args: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # In process: usage errors never reach the network, and this keeps the suite fast.
    code = run(args)
    out, err = capsys.readouterr()
    assert code == 64, (args, code, err)
    assert out == "" and "Traceback" not in err and err.strip()


@pytest.mark.slow
def test_usage_code_from_the_real_command() -> None:
    r = run_diag("status", "--bogus")
    assert r.code == 64 and "No such option" in r.err and r.out == ""


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for code in ExitCode:
        assert f"{int(code):>3}  {code.name}: {MEANING[code]}"[:40] in out, code
    assert run(["check", "--help"]) == 0
    assert "Nagios" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Certs]]:
    d = tmp_path_factory.mktemp("tls")
    certs = make_certs(d / "certs")
    c = Cluster(d / "etcd", size=1, binary=etcd_bin("etcd", "3.5"), extra_args=[
        f"--cert-file={certs.server_cert}", f"--key-file={certs.server_key}",
        f"--trusted-ca-file={certs.ca}", "--client-cert-auth",
    ])
    m = c.members[0]
    # Client URLs are https; Cluster builds http ones, so override them per member.
    m.extra_args += [f"--listen-client-urls=https://127.0.0.1:{m.client_port}",
                     f"--advertise-client-urls=https://127.0.0.1:{m.client_port}"]
    c.workdir.mkdir(parents=True, exist_ok=True)
    c.start_member(m)
    try:
        wait_until(lambda: c.etcdctl("--cacert", str(certs.ca), "--cert",
                                     str(certs.client_cert), "--key", str(certs.client_key),
                                     "endpoint", "health", endpoints=[https(m.client_port)],
                                     check=False).returncode == 0,
                   30, "TLS etcd healthy")
        yield c, certs
    finally:
        c.stop()


def https(port: int) -> str:
    return f"https://127.0.0.1:{port}"


@pytest.mark.slow
def test_mutual_tls(tls_etcd: tuple[Cluster, Certs]) -> None:
    c, certs = tls_etcd
    ep = https(c.members[0].client_port)
    tls = ["--cacert", str(certs.ca), "--cert", str(certs.client_cert), "--key",
           str(certs.client_key)]
    r = run_diag("--endpoints", ep, *tls, "-w", "json", "status")
    assert r.code == 0, r.err
    want = etcdctl_json(c, *tls, "endpoint", "status", endpoints=[ep])[0]["Status"]
    row = r.json()["endpoints"][0]
    assert row["id"] == f"{want['header']['member_id']:x}"
    assert row["raft_term"] == want["raftTerm"]
    assert r.err == ""  # /metrics over https with the client certificate worked too
    h = run_diag("--endpoints", ep, *tls, "-w", "json", "health")
    assert h.code == 0 and json.loads(h.out)[0]["health"] is True, h.err

    # No client certificate: the server refuses the handshake (3.5.1 as 3.6.16, test_tls).
    r = run_diag("--endpoints", ep, "--cacert", str(certs.ca), "status")
    assert r.code == ExitCode.TLS_CLIENT_CERT_REQUIRED, (r.code, r.err)
    assert r.err.startswith(f"diag: 127.0.0.1:{c.members[0].client_port}: TLS failure")
    # The wrong CA: the server's certificate does not verify.
    r = run_diag("--endpoints", ep, "--cacert", str(certs.other_ca), "--cert",
                 str(certs.client_cert), "--key", str(certs.client_key), "status")
    assert r.code == ExitCode.TLS_UNKNOWN_CA, (r.code, r.err)
    # Plain text to a TLS port.
    r = run_diag("--endpoints", f"127.0.0.1:{c.members[0].client_port}", "status")
    assert r.code == ExitCode.TLS_FAILURE and "serves TLS" in r.err, (r.code, r.err)
    _no_traceback(r.err)


def test_missing_key_file_is_usage(tmp_path: Path) -> None:
    r = run_diag("--endpoints", "https://127.0.0.1:1", "--cacert", str(tmp_path / "nope"),
                 "status")
    assert r.code == 64 and "cannot read --cacert" in r.err, (r.code, r.err)


@pytest.mark.slow
def test_metrics_default_on_a_grpc_only_client_port(raftkv3: Cluster) -> None:
    """Without --metrics-urls diag reads the client URL + /metrics, as for etcd; raftkv's
    client port speaks only gRPC (HTTP/2), so the scrape gets no HTTP/1.1 status line.
    That is the bad-metrics exit code with one sentence naming the fix, not a crash."""
    r = run_diag("--endpoints", ",".join(raftkv3.endpoints), "-w", "json", "status")
    _no_traceback(r.out, r.err)
    assert r.code == 8, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 3 and all("--metrics-urls" in ln for ln in lines), r.err
    assert len(r.json()["endpoints"]) == 3  # the members themselves are still reported
