"""gRPC channels from a member to other members' client URLs (its own internal calls).

Job: a follower forwards some calls to the leader's client port (lease keep-alive and
time-to-live, member update and promotion) and the corruption check asks peers' client
ports for HashKV. An ``http://`` URL gets a plain channel; an ``https://`` URL gets TLS
with the member's own client-port credentials, as etcd dials its own client port: the
``--cert-file``/``--key-file`` pair as the client certificate (so with
``--client-cert-auth`` it needs the clientAuth usage too, as in kubeadm's etcd server
certificates) and ``--trusted-ca-file`` to verify the peer. With ``--auto-tls`` no CA vouches
for a peer's self-signed certificate, so the certificate the peer presents is fetched and
trusted for that channel (etcd skips verification there alike). Without client-port TLS
of its own, an https URL is verified against the system's roots, with no client
certificate.

Invariants: a channel belongs to the event loop that made it (one ``MemberDialer`` per
user, in one loop); when the certificate files change, the next call gets a new channel
made from the new files (the old one is closed by ``close``); the caller passes its own
metadata (the forwarded caller's token), the dialer adds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import grpc

from raftkv.server.tlsfiles import CertSource

log = logging.getLogger("raftkv.server.memberdial")

FETCH_TIMEOUT = 2.0  # seconds to read an auto-TLS peer's certificate


def split_url(url: str) -> tuple[bool, str]:
    """(TLS?, gRPC target host:port) of a client URL; a bare host:port is plain text."""
    if "://" not in url:
        return False, url
    parts = urlsplit(url)
    return parts.scheme in ("https", "unixs"), parts.netloc


class MemberDialer:
    """Cached channels to other members' client URLs; ``tls`` gives the client port's
    current certificate source (None: this member serves its client port in plain text)."""

    def __init__(self, tls: Callable[[], CertSource | None]) -> None:
        self._tls = tls
        self._plain: dict[str, grpc.aio.Channel] = {}
        self._secure: dict[str, tuple[object, grpc.aio.Channel]] = {}
        self._old: list[grpc.aio.Channel] = []

    async def channel(self, url: str) -> grpc.aio.Channel:
        secure, target = split_url(url)
        if not secure:
            ch = self._plain.get(target)
            if ch is None:
                ch = self._plain[target] = grpc.aio.insecure_channel(target)
            return ch
        source = self._tls()
        if source is None:
            return self._cached(target, "system roots", grpc.ssl_channel_credentials)
        pinned = await self._peer_certificate(target) if source.info.auto_tls else None
        creds, signature = source.channel_credentials(pinned)
        return self._cached(target, (signature, pinned), lambda: creds)

    def _cached(self, target: str, version: object,
                creds: Callable[[], grpc.ChannelCredentials]) -> grpc.aio.Channel:
        have = self._secure.get(target)
        if have is not None and have[0] == version:
            return have[1]
        if have is not None:
            self._old.append(have[1])
        ch = grpc.aio.secure_channel(target, creds())
        self._secure[target] = (version, ch)
        return ch

    async def _peer_certificate(self, target: str) -> bytes:
        host, _, port = target.rpartition(":")
        pem = await asyncio.to_thread(ssl.get_server_certificate, (host.strip("[]"), int(port)),
                                      timeout=FETCH_TIMEOUT)
        return pem.encode()

    async def close(self) -> None:
        chans = [*self._plain.values(), *(c for _, c in self._secure.values()), *self._old]
        self._plain.clear()
        self._secure.clear()
        self._old.clear()
        for ch in chans:
            with contextlib.suppress(Exception):
                await ch.close()
