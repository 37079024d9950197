"""``--auto-tls``/``--peer-auto-tls``: a self-signed certificate made at startup, as etcd's.

Job: when a side asks for auto TLS and names no certificate files, make (once, kept in
``<data-dir>/fixtures/client`` or ``fixtures/peer`` like etcd) a self-signed P-256
certificate naming the listen URLs' hosts, and build that side's
:class:`~raftkv.server.tlsfiles.CertSource`.

Invariants:
- the openssl CLI makes the certificate (the stdlib cannot); without it, or when it
  fails, startup fails with one sentence (a ``ConfigError``, exit code 2);
- an existing, still valid pair is reused, so a restart keeps its certificate;
- explicit ``--cert-file``/``--key-file`` win over auto TLS (etcd ignores auto TLS then).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from raftkv.server.config import ConfigError
from raftkv.server.tlsconfig import TLSConfigError, TLSInfo, TLSSettings, check_files
from raftkv.server.tlsfiles import CertSource

VALIDITY_DAYS = 365  # etcd's --self-signed-cert-validity default: one year


def _sans(urls: list[str]) -> str:
    names = []
    for url in urls:
        host = urlsplit(url).hostname or "localhost"
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(dict.fromkeys(names or ["DNS:localhost"]))


def _generate(directory: Path, urls: list[str]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSConfigError("--auto-tls needs the openssl command to make its certificate, "
                             "and it is not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", str(VALIDITY_DAYS),
         "-subj", "/O=raftkv", "-addext", f"subjectAltName={_sans(urls)}",
         "-addext", "extendedKeyUsage=serverAuth,clientAuth"],
        cwd=directory, capture_output=True, text=True)
    if out.returncode != 0:
        raise TLSConfigError(f"--auto-tls could not make a certificate in {directory}: "
                             f"{out.stderr.strip().splitlines()[-1:]}")
    (directory / "key.pem").chmod(0o600)


def resolve(info: TLSInfo, data_dir: Path, urls: list[str]) -> TLSInfo:
    """``info`` with certificate files: its own, or auto TLS's (made if needed)."""
    if info.cert_file:
        return dataclasses.replace(info, auto_tls=False)  # own files win, as in etcd
    if not info.auto_tls:
        return info
    directory = data_dir / "fixtures" / ("peer" if info.prefix else "client")
    auto = dataclasses.replace(info, cert_file=str(directory / "cert.pem"),
                               key_file=str(directory / "key.pem"))
    own = dataclasses.replace(auto, trusted_ca_file="", client_cert_auth=False)
    try:
        check_files(own)  # self-signed: the trusted CA, if any, is for clients only
    except TLSConfigError:
        _generate(directory, urls)
        check_files(own)
    return auto


def source(info: TLSInfo, settings: TLSSettings, data_dir: Path,
           urls: list[str]) -> CertSource | None:
    """The side's certificate source, or None when it has no TLS."""
    if not info.enabled:
        return None
    try:
        return CertSource(resolve(info, data_dir, urls), settings)
    except TLSConfigError as exc:
        raise ConfigError(str(exc)) from None
