"""Embedding a member in a Python program: ``async with raftkv.Node(config) as node``.

Like etcd's embed package, :class:`Node` runs a full member — Raft over the network,
durable storage, the etcd gRPC services and the metrics listener — inside the caller's
event loop, and offers ``put/get/delete/txn/status`` directly, without gRPC. The
``raftkv`` command is a thin shell over it. ``stop()`` (or leaving the ``async with``)
shuts down in order: clients first, then Raft, then storage.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import errors, kv
from raftkv.mvcc.auth import AuthInfo
from raftkv.server import autotls, validate
from raftkv.server.authservice import AuthService
from raftkv.server.config import ConfigError, ServerConfig
from raftkv.server.corruptcheck import initial_check
from raftkv.server.http import MetricsServer
from raftkv.server.raftserver import ETCD_VERSION, RaftServer
from raftkv.server.services import (
    ClusterService,
    KVService,
    LeaseService,
    MaintenanceService,
)
from raftkv.server.tlsconfig import GRPC_CIPHERS_ENV, lacks_client_auth
from raftkv.server.tlsfiles import CertSource
from raftkv.server.transport import host_port
from raftkv.server.watchservice import WatchService
from raftkv.storage.metrics import REGISTRY as STORAGE_REGISTRY

log = logging.getLogger("raftkv")

GRPC_OVERHEAD = 512 * 1024  # etcd allows this much beyond --max-request-bytes


def grpc_cipher_env(cfg: ServerConfig) -> None:
    """gRPC takes its cipher list only from the environment, before ``grpc`` is imported:
    the ``raftkv`` command sets it first thing; an embedder must set it alike."""
    if not cfg.tls.ciphers:
        return
    want = ":".join(cfg.tls.ciphers)
    if os.environ.get(GRPC_CIPHERS_ENV) != want:
        raise ConfigError(f"--cipher-suites on the gRPC port needs {GRPC_CIPHERS_ENV}={want} "
                          "in the environment before grpc is imported")


def grpc_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", cfg.max_request_bytes + GRPC_OVERHEAD),
        ("grpc.max_send_message_length", 2**31 - 1),
        # Go clients (etcdctl, kube-apiserver) ping every 5 s even without calls: accept
        # it, never strike, so idle watches are not cut with "too_many_pings".
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_time_ms", 2 * 60 * 60 * 1000),
        ("grpc.keepalive_timeout_ms", 20 * 1000),
    ]


class GenericHandlersOnly:
    """What the generated ``add_*Servicer_to_server`` functions get instead of the server:
    they add each service twice, as a generic handler and as registered methods, and
    grpc.aio keeps one pending call future per registered method, over which it runs
    ``asyncio.wait`` for every incoming call: 42 futures for etcd's services, half of the
    Python function calls of a serializable Range (696 -> 333 per call under cProfile).
    Generic handlers alone resolve a call's method with dict lookups and serve the same
    methods (``tests/server/test_grpc_handlers.py``)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, object]) -> None:
        pass  # served by the generic handler added just before


class Node:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.server = RaftServer(config)
        self.grpc: grpc.aio.Server | None = None
        self.metrics: MetricsServer | None = None
        self.client_tls: CertSource | None = None  # the client port's certificates

    async def start(self) -> Node:
        cfg = self.config
        grpc_cipher_env(cfg)
        self.client_tls = autotls.source(
            cfg.client_tls, cfg.tls, cfg.data_dir,
            [*cfg.advertise_client_urls, *cfg.listen_client_urls])
        self.server.client_tls = self.client_tls
        info = self.client_tls.info if self.client_tls is not None else None
        if (info is not None and info.verify_clients and not info.auto_tls
                and any(u.startswith("https://") for u in cfg.listen_client_urls)
                and lacks_client_auth(info.cert_file)):
            log.warning("--cert-file %s lacks the clientAuth key usage: the other members "
                        "verify client certificates, so they will refuse this member's "
                        "forwarded calls and corruption checks (give it serverAuth and "
                        "clientAuth, as kubeadm's etcd server certificates have)",
                        info.cert_file)
        await self.server.start()
        if self.config.initial_corrupt_check:
            try:
                await initial_check(self.server)
            except BaseException:
                await self.server.stop()
                raise
        self.grpc = grpc.aio.server(options=grpc_options(self.config))
        services = GenericHandlersOnly(self.grpc)
        rpc_pb2_grpc.add_KVServicer_to_server(KVService(self.server), services)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(MaintenanceService(self.server), services)
        rpc_pb2_grpc.add_ClusterServicer_to_server(ClusterService(self.server), services)
        rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseService(self.server), services)
        rpc_pb2_grpc.add_WatchServicer_to_server(WatchService(self.server), services)
        rpc_pb2_grpc.add_AuthServicer_to_server(AuthService(self.server), services)
        for url in self.config.listen_client_urls:
            host, port = host_port(url)
            if url.startswith("https://") and self.client_tls is not None:
                self.grpc.add_secure_port(f"{host}:{port}", self.client_tls.grpc_credentials())
            else:
                self.grpc.add_insecure_port(f"{host}:{port}")
        await self.grpc.start()
        if self.config.listen_metrics_urls:
            self.metrics = MetricsServer([self.server.metrics.registry, STORAGE_REGISTRY],
                                         self.health, ready=self.ready, live=self.live,
                                         etcd_version=ETCD_VERSION)
            for url in self.config.listen_metrics_urls:
                tls = self.client_tls if url.startswith("https://") else None
                await self.metrics.listen(url, tls.listening_context() if tls else None)
        return self

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=1)
        if self.metrics is not None:
            await self.metrics.close()
        await self.server.stop()

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def health(self) -> tuple[bool, str]:
        if self.server.lead == 0:
            return False, "RAFT NO LEADER"
        try:
            await asyncio.wait_for(self.server.linearizable_barrier(), 1.0)
        except (TimeoutError, errors.EtcdError) as exc:
            return False, f"QGET ERROR:{exc}"
        return True, ""

    async def live(self) -> tuple[bool, str]:
        """Liveness: the process and its Raft loop run; the cluster's state does not matter."""
        task = self.server.fatal_task()
        if task.done():
            return False, "the raft loop has stopped"
        return True, ""

    async def ready(self) -> tuple[bool, str]:
        """Readiness: a voter with a known leader that has caught up with its commit index."""
        s = self.server.status()
        if s.isLearner:
            return False, "learner: not serving clients until promoted"
        if self.server.lead == 0:
            return False, "no leader"
        try:
            await asyncio.wait_for(self.server.linearizable_barrier(), 1.0)
        except (TimeoutError, errors.EtcdError) as exc:
            return False, (f"not caught up: applied index {s.raftAppliedIndex} of "
                           f"{s.raftIndex} ({exc or 'timeout'})")
        return True, ""

    # --- the embedded KV API ---------------------------------------------------------------

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> rpc_pb2.PutResponse:
        req = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        validate.check_put(req)
        return await self.server.propose(req, self._as_root())

    async def get(self, key: bytes, range_end: bytes = b"", *, serializable: bool = False,
                  revision: int = 0, limit: int = 0) -> rpc_pb2.RangeResponse:
        req = rpc_pb2.RangeRequest(key=key, range_end=range_end, serializable=serializable,
                                   revision=revision, limit=limit)
        validate.check_range(req)
        if not serializable:
            await self.server.linearizable_barrier()
        return await self.server.range(req)

    async def delete(self, key: bytes, range_end: bytes = b"") -> rpc_pb2.DeleteRangeResponse:
        req = rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end)
        validate.check_delete(req)
        return await self.server.propose(req, self._as_root())

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        validate.check_txn(request, self.config.max_txn_ops)
        if kv.is_read_only(request):
            await self.server.linearizable_barrier()
            return kv.txn(kv.Tx(self.server.backend, None), request, self.server.leases)
        return await self.server.propose(request, self._as_root())

    def _as_root(self) -> AuthInfo | None:
        """The embedding program is trusted: while auth is on its writes go as root."""
        return self.server.as_root()

    def status(self) -> rpc_pb2.StatusResponse:
        return self.server.status()

    async def wait_leader(self, timeout: float = 30.0) -> int:
        """Wait until this member knows a leader (woken by each leader change)."""
        async def known() -> int:
            while self.server.lead == 0:
                await self.server.leader_changed.wait()
            return self.server.lead
        try:
            return await asyncio.wait_for(known(), timeout)
        except TimeoutError:
            raise errors.NoLeader() from None


