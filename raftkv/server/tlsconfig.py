"""TLS settings of a member, with etcd's flag names, and their checks at startup.

Job: hold what ``--cert-file``/``--key-file``/``--trusted-ca-file``/``--client-cert-auth``/
``--auto-tls`` (and their ``--peer-`` twins, ``--peer-cert-allowed-cn``,
``--cipher-suites``, ``--tls-min-version``) say, and refuse bad input with one sentence
naming the flag (a :class:`~raftkv.server.config.ConfigError`, exit code 2).

Invariants:
- as etcd's transport: a trusted CA file (or ``--client-cert-auth``) means every
  connecting client must present a certificate that CA signed;
- :func:`check_files` reads every file once: unreadable files, a key that is not the
  certificate's, a certificate outside its validity period and a certificate the
  trusted CA did not sign are refused before anything listens;
- cipher suites are etcd's (Go's) names, translated to OpenSSL's; a name raftkv cannot
  translate is refused, never ignored.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path


class TLSConfigError(ValueError):
    """A TLS flag's value is unusable; the message names the flag (one sentence)."""


GRPC_CIPHERS_ENV = "GRPC_SSL_CIPHER_SUITES"  # gRPC core reads it once, when it loads
TLS_VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}
# etcd (Go crypto/tls) cipher suite names -> OpenSSL's; TLS 1.2 suites only (Go, like
# OpenSSL here, does not let TLS 1.3's be chosen).
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}


@dataclass(frozen=True)
class TLSInfo:
    """One side's TLS (client port or peer port); ``prefix`` is ``""`` or ``"peer-"``."""

    prefix: str = ""
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    auto_tls: bool = False
    allowed_cn: str = ""  # --peer-cert-allowed-cn: the only CN a connecting peer may have

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file) or self.auto_tls

    @property
    def verify_clients(self) -> bool:
        """Connecting clients (or peers) must show a certificate the trusted CA signed."""
        return bool(self.trusted_ca_file) or self.client_cert_auth

    def flag(self, name: str) -> str:
        return f"--{self.prefix}{name}"


@dataclass(frozen=True)
class TLSSettings:
    """What both sides share: ``--cipher-suites`` (OpenSSL names) and the minimum version."""

    ciphers: tuple[str, ...] = ()
    min_version: str = "TLS1.2"


def parse_cipher_suites(value: str) -> tuple[str, ...]:
    """etcd's comma-separated ``--cipher-suites`` -> OpenSSL cipher names."""
    out: list[str] = []
    for name in (p.strip() for p in value.split(",")):
        if not name:
            continue
        if name not in CIPHER_SUITES:
            raise TLSConfigError(
                f"--cipher-suites: unknown or unsupported cipher suite {name!r} "
                f"(raftkv knows {', '.join(sorted(CIPHER_SUITES))})")
        out.append(CIPHER_SUITES[name])
    return tuple(dict.fromkeys(out))


def parse_min_version(value: str) -> str:
    if value not in TLS_VERSIONS:
        raise TLSConfigError(
            f"--tls-min-version: {value!r} is not supported; use TLS1.2 or TLS1.3")
    return value


def check_settings(settings: TLSSettings) -> None:
    if settings.ciphers and settings.min_version == "TLS1.3":
        raise TLSConfigError("--cipher-suites cannot be used with --tls-min-version=TLS1.3 "
                             "(TLS 1.3's cipher suites are not configurable)")


def _read(flag: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{flag} {path} cannot be read: {exc.strerror}") from None
    if not data.strip():
        raise TLSConfigError(f"{flag} {path} is empty")
    return data


def _decode_cert(path: str) -> dict[str, object]:
    """The certificate's fields as ``ssl`` decodes them (the stdlib has no public call)."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:
        return {}
    return dict(decode(path))


def _check_validity(flag: str, path: str, now: datetime.datetime) -> None:
    try:
        fields = _decode_cert(path)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{flag} {path} is not a PEM certificate ({exc.reason})") from None
    not_after, not_before = fields.get("notAfter"), fields.get("notBefore")
    ts = now.timestamp()
    if isinstance(not_after, str) and ssl.cert_time_to_seconds(not_after) < ts:
        raise TLSConfigError(f"{flag} {path} expired on {not_after}")
    if isinstance(not_before, str) and ssl.cert_time_to_seconds(not_before) > ts:
        raise TLSConfigError(f"{flag} {path} is not valid before {not_before}")


def _load_pair(info: TLSInfo, ctx: ssl.SSLContext) -> None:
    try:
        ctx.load_cert_chain(info.cert_file, info.key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TLSConfigError(f"{info.flag('key-file')} {info.key_file} is not the key of "
                                 f"{info.flag('cert-file')} {info.cert_file}") from None
        raise TLSConfigError(
            f"{info.flag('cert-file')} {info.cert_file} and {info.flag('key-file')} "
            f"{info.key_file} are not a PEM certificate and its key ({exc.reason})") from None


def _check_signed(info: TLSInfo) -> None:
    """An in-memory handshake: a client trusting only the CA must accept the certificate."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_pair(info, server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    try:
        client.load_verify_locations(info.trusted_ca_file)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{info.flag('trusted-ca-file')} {info.trusted_ca_file} holds no "
                             f"PEM CA certificate ({exc.reason})") from None
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            with contextlib.suppress(ssl.SSLWantReadError):
                try:
                    side.do_handshake()
                except ssl.SSLCertVerificationError as exc:
                    raise TLSConfigError(
                        f"{info.flag('cert-file')} {info.cert_file} is not signed by "
                        f"{info.flag('trusted-ca-file')} {info.trusted_ca_file} "
                        f"({exc.verify_message})") from None
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if cli.version() is not None and srv.version() is not None:
            return
    raise TLSConfigError(f"{info.flag('cert-file')} {info.cert_file}: a test handshake with "
                         f"{info.flag('trusted-ca-file')} did not complete")


def check_files(info: TLSInfo, now: datetime.datetime | None = None) -> None:
    """Refuse unusable files of one side (nothing to check under auto TLS alone)."""
    when = now or datetime.datetime.now(datetime.UTC)
    if bool(info.cert_file) != bool(info.key_file):
        given, missing = (("cert-file", "key-file") if info.cert_file
                          else ("key-file", "cert-file"))
        raise TLSConfigError(f"{info.flag(given)} needs {info.flag(missing)} too")
    if info.client_cert_auth and not info.trusted_ca_file:
        raise TLSConfigError(f"{info.flag('client-cert-auth')} needs "
                             f"{info.flag('trusted-ca-file')} (the CA that signs clients)")
    if info.trusted_ca_file:
        _read(info.flag("trusted-ca-file"), info.trusted_ca_file)
    if not info.cert_file:
        return
    _read(info.flag("cert-file"), info.cert_file)
    _read(info.flag("key-file"), info.key_file)
    _load_pair(info, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _check_validity(info.flag("cert-file"), info.cert_file, when)
    if info.trusted_ca_file:
        _check_signed(info)


def lacks_client_auth(cert_file: str) -> bool:
    """Whether the certificate's extended key usage leaves out clientAuth (so a member
    cannot dial other members' client ports with it when they verify clients). A
    certificate without the extension, or one that cannot be read, is not flagged."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH not in eku
