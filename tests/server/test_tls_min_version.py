"""``--tls-min-version=TLS1.3`` (issue 13), checked from outside with ``openssl s_client``.

- with plain-text client URLs, the peer port and the https metrics port (Python's ssl)
  refuse a TLS 1.2-only client and accept TLS 1.3;
- with an https client URL (the gRPC port, whose Python server has no version setting)
  raftkv refuses the flag at startup: exit code 2 and one sentence;
- with the default (TLS1.2) every port, the gRPC one too, accepts a TLS 1.2 client, so the
  ``-tls1_2`` refusals above are the flag's doing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd import Cluster, Member, raftkv_bin
from tests.support.pki import ClusterPKI, cluster_pki
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # a real member


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return cluster_pki(tmp_path_factory.mktemp("pki"))


def s_client(port: int, version: str, pki: ClusterPKI,
             pair: str) -> subprocess.CompletedProcess[str]:
    """One handshake with only ``version`` (``-tls1_2``/``-tls1_3``), our certificate
    ``pair``; its output names the protocol negotiated."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version,
         "-CAfile", str(pki.crt(pki.ca)), "-cert", str(pki.crt(pair)),
         "-key", str(pki.key(pair)), "-verify_return_error", "-brief"],
        input="", capture_output=True, text=True, timeout=30)


def negotiated(r: subprocess.CompletedProcess[str]) -> str | None:
    """The protocol s_client reports, or None if the handshake failed."""
    for line in (r.stdout + r.stderr).splitlines():
        if line.startswith("Protocol version:"):
            return line.split(":", 1)[1].strip()
    return None


def _member(tmp_path: Path, pki: ClusterPKI, client_scheme: str, *extra: str) -> Iterator[Member]:
    """One raftkv member: https peer and metrics URLs, ``client_scheme`` client URL."""
    c = Cluster(tmp_path / "c", 1, binary=raftkv_bin(), pki=pki, https_metrics=True,
                extra_args=list(extra))
    m = c.members[0]
    url = f"{client_scheme}://127.0.0.1:{m.client_port}"
    m.extra_args = [f"--listen-client-urls={url}", f"--advertise-client-urls={url}"]
    c.workdir.mkdir(parents=True)
    try:
        c.start_member(m)
        yield m
    finally:
        c.stop()


def _up(m: Member, pki: ClusterPKI) -> None:
    wait_until(lambda: negotiated(s_client(m.metrics_port, "-tls1_3", pki, pki.client))
               is not None or not (m.proc and m.proc.alive()), 30, "the metrics port serving")
    assert m.proc is not None and m.proc.alive(), m.proc.log_tail() if m.proc else ""


def test_peer_and_metrics_ports_enforce_tls13(tmp_path: Path, pki: ClusterPKI) -> None:
    for m in _member(tmp_path, pki, "http", "--tls-min-version=TLS1.3"):
        _up(m, pki)
        for port, pair in ((m.peer_port, pki.peer), (m.metrics_port, pki.client)):
            assert negotiated(s_client(port, "-tls1_3", pki, pair)) == "TLSv1.3"
            # refused in the handshake (asyncio's TLS server closes without sending the
            # protocol_version alert, so s_client sees an EOF)
            old = s_client(port, "-tls1_2", pki, pair)
            assert negotiated(old) is None and old.returncode != 0, old.stdout + old.stderr


def test_default_accepts_tls12_on_every_port(tmp_path: Path, pki: ClusterPKI) -> None:
    for m in _member(tmp_path, pki, "https"):
        _up(m, pki)
        for port, pair in ((m.client_port, pki.client), (m.peer_port, pki.peer),
                           (m.metrics_port, pki.client)):
            assert negotiated(s_client(port, "-tls1_2", pki, pair)) == "TLSv1.2", port


def test_tls13_on_the_grpc_client_port_is_refused_at_startup(tmp_path: Path,
                                                             pki: ClusterPKI) -> None:
    for m in _member(tmp_path, pki, "https", "--tls-min-version=TLS1.3"):
        assert m.proc is not None and m.proc.popen is not None
        assert m.proc.popen.wait(timeout=30) == 2
        log = m.proc.log_tail()
        assert "--tls-min-version=TLS1.3 cannot be enforced on the gRPC client port" in log
        assert "Traceback" not in log
