"""Bad TLS input is one sentence and exit code 2 at startup (issue 13), before anything
listens: unreadable files, a key that is not the certificate's, an expired certificate,
a certificate the trusted CA did not sign, https without a certificate, unknown cipher
suites and TLS versions. Runs ``raftkv.cli.main`` in-process: it returns at the config
stage, so no member starts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from raftkv.cli import main
from tests.support.pki import ClusterPKI, cluster_pki, issue, make_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    out = cluster_pki(tmp_path_factory.mktemp("pki"))
    issue(out.dir, out.ca, "expired", "/CN=old", usage="peer", expired=True)
    make_ca(out.dir, "other-ca", "another CA")
    issue(out.dir, "other-ca", "stranger", "/CN=stranger", usage="peer")
    return out


def _base(tmp: Path, scheme: str = "https") -> list[str]:
    return ["--name=a", f"--data-dir={tmp / 'a'}",
            f"--listen-client-urls={scheme}://127.0.0.1:1",
            f"--advertise-client-urls={scheme}://127.0.0.1:1",
            "--listen-peer-urls=http://127.0.0.1:2",
            "--initial-advertise-peer-urls=http://127.0.0.1:2",
            "--initial-cluster=a=http://127.0.0.1:2"]


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args, environ={}) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err  # one sentence, no traceback
    return err


def test_mismatched_key(pki: ClusterPKI, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([*_base(tmp_path), f"--cert-file={pki.crt('server')}",
                    f"--key-file={pki.key('client')}"], capsys)
    assert f"--key-file {pki.key('client')} is not the key of --cert-file" in err


def test_expired_peer_certificate(pki: ClusterPKI, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([*_base(tmp_path), *pki.member_args(peer="expired")], capsys)
    assert f"--peer-cert-file {pki.crt('expired')} expired on Jan  2 00:00:00 2020" in err


def test_certificate_not_signed_by_the_trusted_ca(pki: ClusterPKI, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([*_base(tmp_path), *pki.member_args(peer="stranger")], capsys)
    assert (f"--peer-cert-file {pki.crt('stranger')} is not signed by --peer-trusted-ca-file"
            in err)


def test_unreadable_files(pki: ClusterPKI, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.crt"
    err = _refused([*_base(tmp_path), f"--cert-file={missing}",
                    f"--key-file={pki.key('server')}"], capsys)
    assert err == f"raftkv: --cert-file {missing} cannot be read: No such file or directory"
    unreadable = tmp_path / "locked.key"
    unreadable.write_bytes(pki.key("server").read_bytes())
    unreadable.chmod(0)
    if unreadable.open("rb").readable():  # root reads anything: make it a directory instead
        unreadable.chmod(0o600)
        unreadable.unlink()
        unreadable.mkdir()
    err = _refused([*_base(tmp_path), f"--cert-file={pki.crt('server')}",
                    f"--key-file={unreadable}"], capsys)
    assert f"--key-file {unreadable} cannot be read" in err


@pytest.mark.parametrize(("extra", "says"), [
    ([], "--listen-client-urls https://127.0.0.1:1 is https, but neither --cert-file"),
    (["--auto-tls", "--client-cert-auth"], "--client-cert-auth needs --trusted-ca-file"),
    (["--auto-tls", "--tls-min-version=TLS1.1"], "--tls-min-version: 'TLS1.1' is not supported"),
    (["--auto-tls", "--cipher-suites=TLS_FANCY"], "unknown or unsupported cipher suite"),
    (["--auto-tls", "--tls-min-version=TLS1.3",
      "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "cannot be used with"),
    (["--auto-tls", "--tls-min-version=TLS1.3"],
     "--tls-min-version=TLS1.3 cannot be enforced on the gRPC client port "
     "https://127.0.0.1:1 (Python gRPC's server has no TLS version setting)"),
])
def test_flag_errors(extra: list[str], says: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _refused([*_base(tmp_path), *extra], capsys)


def test_https_peer_url_needs_a_peer_certificate(pki: ClusterPKI, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("http://127.0.0.1:2", "https://127.0.0.1:2") for a in _base(tmp_path)]
    err = _refused([*args, f"--cert-file={pki.crt('server')}",
                    f"--key-file={pki.key('server')}"], capsys)
    assert "--listen-peer-urls https://127.0.0.1:2 is https, but neither --peer-cert-file" in err


def test_good_files_pass_the_config_stage(pki: ClusterPKI, tmp_path: Path) -> None:
    from raftkv.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args([*_base(tmp_path), *pki.member_args()]))
    assert cfg.client_tls.verify_clients and cfg.peer_tls.verify_clients
    assert cfg.peer_tls.cert_file == str(pki.crt("peer"))


def test_auto_tls_makes_a_pair_once_and_reuses_it(tmp_path: Path) -> None:
    from raftkv.server import autotls
    from raftkv.server.tlsconfig import TLSInfo

    info = TLSInfo(prefix="peer-", auto_tls=True)
    urls = ["https://127.0.0.1:2380", "https://m0.example:2380"]
    first = autotls.resolve(info, tmp_path, urls)
    cert = Path(first.cert_file)
    assert cert == tmp_path / "fixtures" / "peer" / "cert.pem"
    assert (Path(first.key_file).stat().st_mode & 0o777) == 0o600
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(first.cert_file, first.key_file)  # a matching pair
    pem = cert.read_bytes()
    again = autotls.resolve(info, tmp_path, urls)
    assert again == first and cert.read_bytes() == pem  # a restart keeps its certificate
    own = autotls.resolve(TLSInfo(cert_file="/c", key_file="/k", auto_tls=True), tmp_path, urls)
    assert own.cert_file == "/c" and not own.auto_tls  # explicit files win


def test_a_trusted_ca_alone_requires_client_certificates(pki: ClusterPKI,
                                                         tmp_path: Path) -> None:
    """As etcd 3.6.16 (checked by hand: etcdctl without --cert gets no answer from an etcd
    started with --trusted-ca-file and no --client-cert-auth)."""
    from raftkv.cli import build_parser, config_from_args
    from raftkv.server.tlsfiles import CertSource

    cfg = config_from_args(build_parser().parse_args([
        *_base(tmp_path), f"--cert-file={pki.crt('server')}", f"--key-file={pki.key('server')}",
        f"--trusted-ca-file={pki.crt(pki.ca)}"]))
    assert cfg.client_tls.verify_clients and not cfg.client_tls.client_cert_auth
    assert CertSource(cfg.client_tls, cfg.tls).server_context().verify_mode is ssl.CERT_REQUIRED


def test_lacks_client_auth(tmp_path: Path) -> None:
    """A server certificate without clientAuth is flagged (the member warns at startup:
    other members would refuse its dials to their client ports)."""
    from raftkv.server.tlsconfig import lacks_client_auth
    from tests.support.pki import issue, make_ca

    make_ca(tmp_path, "ca", "eku-ca")
    issue(tmp_path, "ca", "only-server", "/CN=s", usage="server")
    issue(tmp_path, "ca", "both", "/CN=b", usage="peer")
    assert lacks_client_auth(str(tmp_path / "only-server.crt"))
    assert not lacks_client_auth(str(tmp_path / "both.crt"))
    assert not lacks_client_auth(str(tmp_path / "missing.crt"))
