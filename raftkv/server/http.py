"""The metrics listener: ``/metrics``, ``/health`` (etcd's JSON) and the kubelet probes.

A deliberately small HTTP/1.1 responder on asyncio streams: GET only, one request per
connection, bounded header size.

- ``/health``: true when the member has a leader and a linearizable read completes within
  a second, with etcd's JSON shape and a 503 otherwise;
- ``/livez``: 200 while the process serves requests; it asks nothing of the cluster, so a
  quorum loss never makes kubelet restart the members (which would not bring it back);
- ``/readyz``: 200 only when the member is a voter that knows a leader and has applied
  everything the leader had committed when asked (a ReadIndex round), else 503 and the
  reason as text;
- ``/version``: etcd's ``{"etcdserver", "etcdcluster"}`` JSON plus ``"raftkv"``, the
  installed distribution's version (what the operator shows as members[].version).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import ssl
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from raftkv.server.transport import host_port

Health = Callable[[], Awaitable[tuple[bool, str]]]

ETCD_CLUSTER_VERSION = "3.6.0"


def raftkv_version() -> str:
    """The installed distribution's version ("unknown" when run from a bare checkout)."""
    try:
        return importlib.metadata.version("raftkv")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def version_document(etcd_version: str) -> bytes:
    return json.dumps({"etcdserver": etcd_version, "etcdcluster": ETCD_CLUSTER_VERSION,
                       "raftkv": raftkv_version()}, separators=(",", ":")).encode()


async def _alive() -> tuple[bool, str]:
    return True, ""


class MetricsServer:
    def __init__(self, registries: list[CollectorRegistry], health: Health,
                 ready: Health | None = None, live: Health | None = None,
                 etcd_version: str = "3.6.16") -> None:
        self.registries = registries
        self.health = health
        self.ready = ready or health
        self.live = live or _alive
        self.version = version_document(etcd_version)
        self.servers: list[asyncio.Server] = []

    async def listen(self, url: str, tls: ssl.SSLContext | None = None) -> None:
        """Serve on ``url``; an https URL with ``tls``, the client port's certificates."""
        host, port = host_port(url)
        self.servers.append(await asyncio.start_server(self._handle, host, port, ssl=tls))

    async def close(self) -> None:
        for s in self.servers:
            s.close()
            with contextlib.suppress(Exception):
                await s.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if len(head) > 16384:
                raise ValueError("header too large")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                body = b"".join(generate_latest(r) for r in self.registries)
                status, ctype = "200 OK", CONTENT_TYPE_LATEST
            elif path == "/health":
                ok, reason = await self.health()
                body = json.dumps({"health": "true" if ok else "false", "reason": reason},
                                  separators=(",", ":")).encode()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype = "application/json"
            elif path in ("/livez", "/readyz"):
                ok, reason = await (self.live() if path == "/livez" else self.ready())
                body = ("ok\n" if ok else f"{reason}\n").encode()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype = "text/plain"
            elif path == "/version":
                status, ctype, body = "200 OK", "application/json", self.version
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, ConnectionError):
            pass
        finally:
            writer.close()
