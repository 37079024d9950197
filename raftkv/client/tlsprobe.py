"""Why a TLS connection failed, told by a handshake of our own (Python's ssl, i.e. OpenSSL).

grpc reports a failed TLS handshake as one opaque string, and a certificate the *server*
rejects (TLS 1.3 sends that alert after the client's handshake is done) only as
"Unwrap failed (TSI_DATA_CORRUPTED)". So, after grpc fails, :func:`diagnose` repeats the
handshake with the same CA, certificate and key and reads the server's first bytes: the
server either answers (TLS is fine; the failure was something else) or its alert
arrives, and OpenSSL names it. Verification failures carry X.509 verify codes. A server
that verified fine from our side and then closes without an alert (gRPC's and asyncio's
TLS servers, raftkv's, drop the connection where Go's etcd sends the alert) refused our
client certificate: none given, expired (read from the file), or rejected.

Invariants: :func:`diagnose` and :func:`classify_ssl_error` return ``None`` unless they
can name the failure; each named failure is one :class:`TLSFinding` whose ``kind`` is one
of the ``ErrorKind.TLS*`` kinds and whose ``detail`` is one sentence saying what to fix.
Only loopback-or-given hosts are dialed, once, within ``timeout``.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from raftkv.client.errors import ErrorKind
from raftkv.client.tls import TLSConfig

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that mean "no CA in the bundle signed this".
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}
_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH

# HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 section 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class TLSFinding:
    kind: ErrorKind
    detail: str


def _context(tls: TLSConfig, check: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.cacert) if tls.cacert else None)
    if tls.cert is not None and tls.key is not None:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    if not check:
        ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def _ca_name(tls: TLSConfig) -> str:
    return f"--cacert {tls.cacert}" if tls.cacert else "the system's CA bundle (no --cacert)"


def _names_in_cert(host: str, port: int, tls: TLSConfig, timeout: float) -> str:
    """The DNS and IP names the server's certificate lists (verified, name unchecked)."""
    try:
        with socket.create_connection((host, port), timeout) as raw, \
                _context(tls, check=False).wrap_socket(raw) as s:
            cert = s.getpeercert() or {}
    except (OSError, ValueError):
        return "names unknown"
    sans: tuple[tuple[str, str], ...] = cert.get("subjectAltName", ())  # type: ignore[assignment]
    names = [f"{kind}:{value}" for kind, value in sans]
    return "it names " + (", ".join(names) if names else "no subjectAltName")


def _from_verify(exc: ssl.SSLCertVerificationError, host: str, tls: TLSConfig,
                 names: str) -> TLSFinding | None:
    code, why = exc.verify_code, exc.verify_message.rstrip(".")
    if code in _UNKNOWN_ISSUER:
        return TLSFinding(ErrorKind.TLS_UNKNOWN_CA,
                          f"the server's certificate is not signed by a CA in {_ca_name(tls)} "
                          f"({why}); give the CA that signed it (kubeadm: "
                          "/etc/kubernetes/pki/etcd/ca.crt)")
    if code == _EXPIRED:
        return TLSFinding(ErrorKind.TLS_EXPIRED,
                          f"the server's certificate has expired ({why}); the server needs a "
                          "renewed certificate")
    if code in _NAME_MISMATCH:
        return TLSFinding(ErrorKind.TLS_HOSTNAME_MISMATCH,
                          f"the server's certificate does not name {host!r} ({why}"
                          f"{'; ' + names if names else ''}); "
                          "connect with a name or address the certificate lists")
    return None


def _from_alert(reason: str, tls: TLSConfig) -> TLSFinding | None:
    """An alert the server sent: it refused our (missing) client certificate."""
    r = reason.upper()
    if "CERTIFICATE_REQUIRED" in r or ("BAD_CERTIFICATE" in r and tls.cert is None):
        return TLSFinding(ErrorKind.TLS_CLIENT_CERT_REQUIRED,
                          "the server requires a client certificate (it runs with "
                          "--client-cert-auth); give --cert and --key")
    if "CERTIFICATE_EXPIRED" in r:
        return TLSFinding(ErrorKind.TLS_EXPIRED,
                          f"the server says the client certificate --cert {tls.cert} has "
                          "expired; renew it")
    if "UNKNOWN_CA" in r or "BAD_CERTIFICATE" in r or "UNSUPPORTED_CERTIFICATE" in r:
        return TLSFinding(ErrorKind.TLS_CLIENT_CERT_REJECTED,
                          f"the server rejected the client certificate --cert {tls.cert} "
                          f"({reason}); it must be signed by the server's "
                          "--trusted-ca-file and allow client authentication")
    if "WRONG_VERSION_NUMBER" in r or "RECORD_LAYER_FAILURE" in r:
        return TLSFinding(ErrorKind.TLS,
                          "the server does not speak TLS; use an http:// endpoint and no "
                          "--cacert/--cert/--key")
    return None


def classify_ssl_error(exc: BaseException, host: str, tls: TLSConfig,
                       names: str = "") -> TLSFinding | None:
    """Name an ``ssl`` exception (from our probe, or from urllib scraping https /metrics)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _from_verify(exc, host, tls, names)
    if isinstance(exc, ssl.SSLError):
        return _from_alert(str(exc.reason or exc), tls)
    return None


def _await_verdict(s: ssl.SSLSocket, timeout: float) -> bool:
    """Read the server's first bytes after the handshake; an alert raises ``SSLError``.
    True if the server closed the connection without a byte or an alert.

    The alert is read before anything is sent: writing to a server that has already closed
    earns a reset that discards the alert. A server that accepted the certificate waits for
    HTTP/2's preface (etcd's cmux does), so after a short quiet spell we send it.
    """
    s.settimeout(min(0.5, timeout))
    try:
        return s.recv(9) == b""
    except TimeoutError:
        pass
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
        return True
    s.settimeout(timeout)
    try:
        s.sendall(_H2_PREFACE)
        return s.recv(9) == b""  # the server's SETTINGS frame, or its alert raises here
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, BrokenPipeError, ConnectionResetError):
        return True


def _expired(path: object) -> bool:
    """Whether the PEM certificate at ``path`` is past its notAfter (False if unknown)."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    try:
        not_after = decode(str(path)).get("notAfter") if decode else None
    except (OSError, ssl.SSLError):
        return False
    return isinstance(not_after, str) and ssl.cert_time_to_seconds(not_after) < time.time()


def _dropped(tls: TLSConfig) -> TLSFinding:
    """The server closed right after a handshake that verified its certificate, with no
    alert: what gRPC's and asyncio's TLS servers (raftkv's) do where Go's sends one about
    our client certificate; so the client certificate is what it refused."""
    why = "the server closed the connection after the handshake, without an alert"
    if tls.cert is None:
        return TLSFinding(ErrorKind.TLS_CLIENT_CERT_REQUIRED,
                          "the server requires a client certificate (it runs with "
                          f"--client-cert-auth; {why}); give --cert and --key")
    if _expired(tls.cert):
        return TLSFinding(ErrorKind.TLS_EXPIRED,
                          f"the client certificate --cert {tls.cert} has expired ({why}); "
                          "renew it")
    return TLSFinding(ErrorKind.TLS_CLIENT_CERT_REJECTED,
                      f"the server rejected the client certificate --cert {tls.cert} ({why}); "
                      "it must be signed by the server's --trusted-ca-file and allow client "
                      "authentication")


def diagnose(host: str, port: int, tls: TLSConfig, timeout: float) -> TLSFinding | None:
    """Repeat the handshake grpc failed; ``None`` if it succeeds or the port is closed."""
    try:
        ctx = _context(tls)
    except (OSError, ValueError, ssl.SSLError):
        return None  # bad files: TLSConfig reports those as usage errors
    try:
        with socket.create_connection((host, port), timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as s:
            dropped = _await_verdict(s, timeout)
    except ssl.SSLCertVerificationError as exc:
        names = (_names_in_cert(host, port, tls, timeout)
                 if exc.verify_code in _NAME_MISMATCH else "")
        return classify_ssl_error(exc, host, tls, names)
    except ssl.SSLError as exc:
        return classify_ssl_error(exc, host, tls)
    except OSError:
        return None
    return _dropped(tls) if dropped else None


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the port completes a TLS handshake (nothing verified): for plain-text dials."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout) as raw, ctx.wrap_socket(raw):
            return True
    except ssl.SSLError as exc:  # an alert (e.g. "certificate required") is TLS speaking
        return "ALERT" in str(exc.reason or "").upper()
    except OSError:
        return False
