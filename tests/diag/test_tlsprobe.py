"""Fast checks of diag's TLS naming, against an in-process OpenSSL server (Python's ssl).

The real proof is tests/diag/test_tls.py against etcd 3.6.16; these keep the probe's logic
and the option parsing covered in the quick suite. The server thread accepts until the
test closes its socket, and is joined.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkv.client import (
    EndpointStatus,
    ErrorKind,
    EtcdClient,
    EtcdError,
    TLSConfig,
    parse_endpoint,
)
from raftkv.client.tlsprobe import diagnose
from raftkv.diag.app import run
from raftkv.diag.exitcodes import FOR_KIND, ExitCode
from raftkv.diag.options import metrics_url
from tests.diag.certs import Certs, Pair, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("probe-certs"))


def _serve(certs: Certs, server: Pair, host: str) -> Iterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(server.cert), str(server.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(str(certs.ca))
    ctx.set_alpn_protocols(["h2"])
    sock = socket.create_server((host, 0))

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # the test closed the listening socket
            with conn:
                try:
                    with ctx.wrap_socket(conn, server_side=True) as t:
                        t.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS
                except (OSError, ssl.SSLError):
                    pass  # the handshake the test meant to fail

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        t.join(5)


@pytest.fixture(scope="module")
def port(certs: Certs) -> Iterator[int]:
    yield from _serve(certs, Pair(certs.server_cert, certs.server_key), "127.0.0.1")


def _tls(certs: Certs, ca: Path | None = None, client: Pair | None = None,
         no_cert: bool = False) -> TLSConfig:
    c = client or Pair(certs.client_cert, certs.client_key)
    return TLSConfig(ca or certs.ca, None if no_cert else c.cert, None if no_cert else c.key)


@pytest.mark.parametrize(("case", "kind"), [
    ("good", None),
    ("other-ca", ErrorKind.TLS_UNKNOWN_CA),
    ("no-cert", ErrorKind.TLS_CLIENT_CERT_REQUIRED),
    ("other-client", ErrorKind.TLS_CLIENT_CERT_REJECTED),
])
def test_probe_names_the_cause(certs: Certs, port: int, case: str,
                               kind: ErrorKind | None) -> None:
    tls = {
        "good": _tls(certs), "other-ca": _tls(certs, ca=certs.other_ca),
        "no-cert": _tls(certs, no_cert=True),
        "other-client": _tls(certs, client=certs.other_client),
    }[case]
    found = diagnose("127.0.0.1", port, tls, 2.0)
    assert (found.kind if found else None) == kind, found


def test_probe_hostname_and_expired(certs: Certs) -> None:
    for p in _serve(certs, Pair(certs.server_cert, certs.server_key), "127.0.0.2"):
        found = diagnose("127.0.0.2", p, _tls(certs), 2.0)
        assert found is not None and found.kind is ErrorKind.TLS_HOSTNAME_MISMATCH
        assert "IP Address:127.0.0.1" in found.detail and "'127.0.0.2'" in found.detail
    for p in _serve(certs, certs.expired_server, "127.0.0.1"):
        found = diagnose("127.0.0.1", p, _tls(certs), 2.0)
        assert found is not None and found.kind is ErrorKind.TLS_EXPIRED


def test_client_reports_the_probe_kind(certs: Certs, port: int) -> None:
    """grpc's own error ("Unwrap failed") becomes the named kind through EtcdClient."""
    async def status() -> EndpointStatus:
        ep = parse_endpoint(f"https://127.0.0.1:{port}")
        async with EtcdClient(ep, _tls(certs, no_cert=True), 2.0, 2.0) as c:
            return await c.status()

    with pytest.raises(EtcdError) as info:
        asyncio.run(status())
    assert info.value.kind is ErrorKind.TLS_CLIENT_CERT_REQUIRED, info.value


def test_each_tls_kind_has_its_own_exit_code() -> None:
    tls_kinds = [k for k in ErrorKind if k.is_tls]
    codes = {FOR_KIND[k] for k in tls_kinds}
    assert len(codes) == len(tls_kinds) == 6
    assert not codes & {ExitCode.UNREACHABLE, ExitCode.NOT_ETCD, ExitCode.USAGE}


@pytest.mark.parametrize(("given", "want"), [
    ("http://127.0.0.1:2381", "http://127.0.0.1:2381/metrics"),
    ("https://127.0.0.1:2381/", "https://127.0.0.1:2381/metrics"),
    ("http://127.0.0.1:2381/metrics", "http://127.0.0.1:2381/metrics"),
    ("http://h:1/custom/path", "http://h:1/custom/path"),
])
def test_metrics_base_url_reads_metrics(given: str, want: str) -> None:
    assert metrics_url(given) == want


@pytest.mark.parametrize("bad", ["127.0.0.1:2381", "ftp://x:1", "http://:1"])
def test_metrics_url_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        metrics_url(bad)


def test_global_options_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The control-plane pod (manifests/diag) sets DIAG_*; a bad value is still usage."""
    monkeypatch.setenv("DIAG_METRICS_URLS", "ftp://127.0.0.1:2381")
    assert run(["status"]) == ExitCode.USAGE
    assert "ftp://127.0.0.1:2381" in capsys.readouterr().err
    monkeypatch.setenv("DIAG_METRICS_URLS", "http://127.0.0.1:2381")
    monkeypatch.setenv("DIAG_CERT", "/etc/client.crt")  # without DIAG_KEY: refused up front
    assert run(["status"]) == ExitCode.USAGE
    assert "--cert and --key must be given together" in capsys.readouterr().err


@pytest.fixture(scope="module")
def silent_port(certs: Certs) -> Iterator[int]:
    """A TLS server that completes the handshake, then closes without a byte or an alert,
    as raftkv's gRPC and asyncio servers do when they refuse a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    ctx.set_alpn_protocols(["h2"])
    sock = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    t = ctx.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    continue
                t.close()  # no unwrap(): no close_notify, a bare TCP close

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        t.join(5)


def test_a_silent_close_after_the_handshake_names_the_client_certificate(
        silent_port: int, certs: Certs) -> None:
    found = diagnose("127.0.0.1", silent_port, _tls(certs, no_cert=True), 2.0)
    assert found is not None and found.kind is ErrorKind.TLS_CLIENT_CERT_REQUIRED
    found = diagnose("127.0.0.1", silent_port, _tls(certs, client=certs.expired_client), 2.0)
    assert found is not None and found.kind is ErrorKind.TLS_EXPIRED
    assert str(certs.expired_client.cert) in found.detail
    found = diagnose("127.0.0.1", silent_port, _tls(certs), 2.0)
    assert found is not None and found.kind is ErrorKind.TLS_CLIENT_CERT_REJECTED


def test_a_server_that_answers_is_no_tls_failure(port: int, certs: Certs) -> None:
    assert diagnose("127.0.0.1", port, _tls(certs), 2.0) is None
