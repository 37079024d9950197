"""Certificates of one side (client port or peer port), re-read when their files change.

Job: turn a :class:`~raftkv.server.tlsconfig.TLSInfo` into the TLS contexts a member
uses - serving (gRPC, metrics, the peer port) and dialing (to peers) - and keep them
current: each new connection or handshake first looks at the files' stat signature
(inode, size, mtime), and a change makes fresh contexts from the files, as etcd re-reads
certificates on each handshake. Connections already open keep the certificate they
started with; nothing restarts.

Invariants:
- a change that cannot be loaded (a certificate copied before its key, a broken file) is
  logged once and the previous, working contexts stay in use until the files are good;
- the serving context given to a listener never changes identity: its SNI callback
  (called by OpenSSL for every handshake, with or without SNI) swaps in the current one;
- when the side verifies clients (a trusted CA), a client without a certificate signed
  by it fails the handshake, so no application byte from it is ever read.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass

import grpc

from raftkv.server.tlsconfig import TLS_VERSIONS, TLSInfo, TLSSettings

log = logging.getLogger("raftkv.tls")

Signature = tuple[tuple[int, int, int], ...]


@dataclass
class _Loaded:
    signature: Signature
    server: ssl.SSLContext
    client: ssl.SSLContext
    grpc_config: grpc.ServerCertificateConfiguration
    pair: tuple[bytes, bytes]  # (key, certificate chain) PEM, to dial with
    ca: bytes  # the trusted CA PEM ("" without one)


class CertSource:
    """The current contexts of one side; ``info`` has its certificate files set."""

    def __init__(self, info: TLSInfo, settings: TLSSettings) -> None:
        if not info.cert_file or not info.key_file:
            raise ValueError(f"{info.flag('cert-file')} and {info.flag('key-file')} are needed")
        self.info = info
        self.settings = settings
        self.reloads = 0  # times new files were loaded after the first (tests, logs)
        self._failed: Signature | None = None
        self._lock = threading.Lock()  # gRPC calls its fetcher from a thread of its own
        self._loaded = self._load(self._signature())
        self._grpc_served: Signature | None = None
        self._listening: ssl.SSLContext | None = None

    def _paths(self) -> list[str]:
        return [p for p in (self.info.cert_file, self.info.key_file,
                            self.info.trusted_ca_file) if p]

    def _signature(self) -> Signature:
        sig = []
        for path in self._paths():
            try:
                st = os.stat(path)
                sig.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                sig.append((0, -1, 0))
        return tuple(sig)

    def _base(self, purpose: ssl._SSLMethod) -> ssl.SSLContext:
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = TLS_VERSIONS[self.settings.min_version]
        if self.settings.ciphers:
            ctx.set_ciphers(":".join(self.settings.ciphers))
        ctx.load_cert_chain(self.info.cert_file, self.info.key_file)
        return ctx

    def _load(self, signature: Signature) -> _Loaded:
        info = self.info
        server = self._base(ssl.PROTOCOL_TLS_SERVER)
        client = self._base(ssl.PROTOCOL_TLS_CLIENT)
        ca = b""
        if info.trusted_ca_file:
            server.load_verify_locations(info.trusted_ca_file)
            client.load_verify_locations(info.trusted_ca_file)
            with open(info.trusted_ca_file, "rb") as f:
                ca = f.read()
        else:
            client.load_default_certs()
        if info.auto_tls:
            # the peers' certificates are self-signed too: encrypted, but not verifiable
            # (etcd's --peer-auto-tls skips verification alike)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
        if info.verify_clients:
            server.verify_mode = ssl.CERT_REQUIRED
        with open(info.key_file, "rb") as kf, open(info.cert_file, "rb") as cf:
            pair = (kf.read(), cf.read())
        config = grpc.ssl_server_certificate_configuration(
            [pair], root_certificates=ca or None)
        return _Loaded(signature, server, client, config, pair, ca)

    def _current(self) -> _Loaded:
        with self._lock:
            return self._refresh()

    def _refresh(self) -> _Loaded:
        sig = self._signature()
        if sig == self._loaded.signature or sig == self._failed:
            return self._loaded
        try:
            self._loaded = self._load(sig)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed = sig
            log.warning("%s %s changed but cannot be loaded (%s); still serving the "
                        "previous certificate", self.info.flag("cert-file"),
                        self.info.cert_file, exc)
            return self._loaded
        self._failed = None
        self.reloads += 1
        log.info("reloaded %s %s", self.info.flag("cert-file"), self.info.cert_file)
        return self._loaded

    def server_context(self) -> ssl.SSLContext:
        return self._current().server

    def client_context(self) -> ssl.SSLContext:
        """For dialing a peer: our certificate, and the trusted CA to verify the peer."""
        return self._current().client

    def channel_credentials(self, pinned: bytes | None = None
                            ) -> tuple[grpc.ChannelCredentials, Signature]:
        """gRPC credentials for dialing another member's port of this side, as etcd dials
        with the side's certificate and trusted CA; and the files' signature they were
        made from (a channel made from an older signature should be replaced). ``pinned``
        (auto TLS: peers' self-signed certificates no CA vouches for) is the certificate
        to trust instead of the CA."""
        loaded = self._current()
        key, chain = loaded.pair
        roots = pinned if pinned is not None else (loaded.ca or None)
        return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key,
                                            certificate_chain=chain), loaded.signature

    def listening_context(self) -> ssl.SSLContext:
        """One context for a listener; every handshake is switched to the current one."""
        if self._listening is None:
            base = self._base(ssl.PROTOCOL_TLS_SERVER)
            if self.info.trusted_ca_file:
                base.load_verify_locations(self.info.trusted_ca_file)
            if self.info.verify_clients:
                base.verify_mode = ssl.CERT_REQUIRED

            def switch(obj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
                obj.context = self.server_context()

            base.sni_callback = switch
            self._listening = base
        return self._listening

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC's dynamic credentials: the fetcher runs before each new handshake."""
        def fetch() -> grpc.ServerCertificateConfiguration | None:
            loaded = self._current()
            if loaded.signature == self._grpc_served:
                return None  # unchanged: gRPC keeps what it has
            self._grpc_served = loaded.signature
            return loaded.grpc_config

        initial = self._loaded
        self._grpc_served = initial.signature
        return grpc.dynamic_ssl_server_credentials(
            initial.grpc_config, fetch,
            require_client_authentication=self.info.verify_clients)


def peer_common_name(peercert: object) -> str:
    """The subject CN of a certificate as ``getpeercert()`` returns it ("" if none)."""
    if not isinstance(peercert, dict):
        return ""
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
