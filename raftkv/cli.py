"""The ``raftkv`` command: run one member with etcd's flag names and meanings.

A thin shell over :class:`raftkv.server.embed.Node`. A bad flag or value is one sentence
on stderr and exit code 2; storage trouble (a corrupt WAL, a data dir locked by another
process) is one sentence and exit code 3; a test-only unsafe switch set outside a test
(``raftkv.server.unsafe``) is one sentence and exit code 4; SIGTERM and SIGINT shut down
cleanly (exit 0).
Every flag can also come from ``ETCD_<FLAG>`` or ``RAFTKV_<FLAG>`` (``envflags``); a flag
on the command line wins, and a bad value in a variable is exit code 2 like the flag's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from raftkv.server import eventloop
from raftkv.server.config import (
    ConfigError,
    ServerConfig,
    parse_duration,
    parse_initial_cluster,
    parse_urls,
)

EXIT_USAGE = 2
EXIT_STORAGE = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"raftkv: {message} (see raftkv --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raftkv", description="Run a raftkv member (etcd v3 API over Raft).",
                allow_abbrev=False)
    a = p.add_argument
    a("--name", default="default", help="human-readable name for this member")
    a("--data-dir", default=None, help="path to the data directory (default: ${name}.etcd)")
    a("--listen-peer-urls", default="http://localhost:2380")
    a("--initial-advertise-peer-urls", default="http://localhost:2380")
    a("--listen-client-urls", default="http://localhost:2379")
    a("--advertise-client-urls", default="http://localhost:2379")
    a("--listen-metrics-urls", default="", help="URLs serving /metrics and /health")
    a("--initial-cluster", default=None, help="name=peer-url,... of the initial members")
    a("--initial-cluster-state", default="new", choices=["new", "existing"])
    a("--initial-cluster-token", default="etcd-cluster")
    a("--heartbeat-interval", type=int, default=100, help="milliseconds")
    a("--election-timeout", type=int, default=1000, help="milliseconds")
    a("--snapshot-count", type=int, default=100_000)
    a("--quota-backend-bytes", type=int, default=2 << 30)
    a("--max-request-bytes", type=int, default=1536 * 1024)
    a("--max-txn-ops", type=int, default=128)
    from raftkv import cli_maintenance  # (here: one block for the maintenance flags)

    cli_maintenance.add_flags(p)  # --corrupt-check-time, --experimental-initial-corrupt-check
    a("--experimental-snapshot-catchup-entries", type=int, default=5000,
      help="entries kept in the log after a snapshot for slow followers")
    a("--experimental-wal-segment-bytes", type=int, default=64 << 20,
      help="size of preallocated WAL segment files (small values are for tests)")
    a("--watch-progress-notify-interval", "--experimental-watch-progress-notify-interval",
      dest="watch_progress_notify_interval", default="10m",
      help="period of progress notifications to watches that ask for them (a duration; "
           "the experimental- name is etcd 3.5's)")
    from raftkv import cli_tls  # (here: one block for the TLS flags)

    cli_tls.add_flags(p)
    a("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    a("--logger", default="text", choices=["text", "json", "zap"])
    from raftkv.server import flagtypes as ft  # (here: one block for the lease flags)

    a("--experimental-enable-lease-checkpoint", type=ft.argtype(ft.go_bool), nargs="?",
      const=True, default=None,
      help="replicate leases' remaining TTLs (etcd 3.5's name; default on)")
    a("--feature-gates", type=ft.argtype(ft.feature_gates), default={},
      help="etcd 3.6's Gate=true,... (raftkv knows LeaseCheckpoint, LeaseCheckpointPersist)")
    a("--lease-checkpoint-interval", type=ft.argtype(ft.go_duration), default=300.0,
      help="how often the leader replicates remaining lease TTLs (a Go duration; raftkv "
           "only: etcd has no flag for it, its default is 5m)")
    a("--auth-token", default="simple", help="token type: 'simple' (jwt is not supported)")
    a("--auth-token-ttl", type=int, default=300,
      help="seconds a simple token lives after its last use on a member")
    return p


def _maintenance_values(ns: argparse.Namespace) -> dict[str, Any]:
    from raftkv import cli_maintenance

    return cli_maintenance.config_values(ns)


def _tls_values(ns: argparse.Namespace) -> dict[str, Any]:
    from raftkv import cli_tls

    return cli_tls.config_values(ns)


def config_from_args(ns: argparse.Namespace) -> ServerConfig:
    peer_adv = parse_urls("initial-advertise-peer-urls", ns.initial_advertise_peer_urls)
    cluster = (parse_initial_cluster(ns.initial_cluster) if ns.initial_cluster
               else {ns.name: peer_adv})
    cfg = ServerConfig(
        name=ns.name,
        data_dir=Path(ns.data_dir or f"{ns.name}.etcd"),
        listen_peer_urls=parse_urls("listen-peer-urls", ns.listen_peer_urls),
        initial_advertise_peer_urls=peer_adv,
        listen_client_urls=parse_urls("listen-client-urls", ns.listen_client_urls),
        advertise_client_urls=parse_urls("advertise-client-urls", ns.advertise_client_urls),
        listen_metrics_urls=(parse_urls("listen-metrics-urls", ns.listen_metrics_urls)
                             if ns.listen_metrics_urls else []),
        initial_cluster=cluster,
        initial_cluster_state=ns.initial_cluster_state,
        initial_cluster_token=ns.initial_cluster_token,
        heartbeat_interval_ms=ns.heartbeat_interval,
        election_timeout_ms=ns.election_timeout,
        snapshot_count=ns.snapshot_count,
        quota_backend_bytes=ns.quota_backend_bytes,
        max_request_bytes=ns.max_request_bytes,
        max_txn_ops=ns.max_txn_ops,
        **_maintenance_values(ns),
        **_tls_values(ns),
        snapshot_catchup_entries=ns.experimental_snapshot_catchup_entries,
        wal_segment_bytes=ns.experimental_wal_segment_bytes,
        watch_progress_notify_interval=parse_duration(
            "watch-progress-notify-interval", ns.watch_progress_notify_interval),
        log_level=ns.log_level,
        logger=ns.logger,
        lease_checkpoint=_lease_checkpoint(ns),
        lease_checkpoint_interval_s=ns.lease_checkpoint_interval,
        auth_token=ns.auth_token,
        auth_token_ttl_s=ns.auth_token_ttl,
    )
    cfg.validate()
    return cfg


def _lease_checkpoint(ns: argparse.Namespace) -> bool:
    """On unless turned off by either etcd spelling; the two must not disagree."""
    old: bool | None = ns.experimental_enable_lease_checkpoint
    gate: bool | None = ns.feature_gates.get("LeaseCheckpoint")
    if old is not None and gate is not None and old != gate:
        raise ConfigError("--experimental-enable-lease-checkpoint and "
                          "--feature-gates=LeaseCheckpoint disagree")
    return next((v for v in (gate, old) if v is not None), True)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "level": record.levelname.lower(),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "logger": record.name,
            "msg": record.getMessage(),
        })


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt in ("json", "zap"):
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level={"warn": "WARNING"}.get(level, level.upper()), handlers=[handler])


async def serve(cfg: ServerConfig) -> None:
    from raftkv.server.embed import Node

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Node(cfg) as node:
        logging.getLogger("raftkv").info(
            "ready to serve client requests on %s (member %x, cluster %x)",
            ",".join(cfg.listen_client_urls), node.server.id, node.server.cluster_id)
        eventloop.settle()
        done = asyncio.ensure_future(stop.wait())
        fatal = node.server.fatal_task()
        await asyncio.wait({done, fatal}, return_when=asyncio.FIRST_COMPLETED)
        if fatal.done() and fatal.exception() is not None:
            raise fatal.exception()  # type: ignore[misc]
        logging.getLogger("raftkv").info("received a signal; shutting down")


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    from raftkv.server import unsafe
    from raftkv.server.envflags import EnvFlagError, from_env, name_source

    parser = build_parser()
    args = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    try:
        env = from_env(parser, args, environ)
    except EnvFlagError as exc:
        sys.stderr.write(f"raftkv: {exc}\n")
        return EXIT_USAGE
    try:
        unsafe_serves = unsafe.deposed_leader_serves(environ)
    except unsafe.UnsafeSwitchRefused as exc:
        sys.stderr.write(f"raftkv: {exc}\n")
        return unsafe.EXIT_REFUSED
    try:
        loop = eventloop.chosen(environ)
    except eventloop.UnknownLoop as exc:
        sys.stderr.write(f"raftkv: {exc}\n")
        return EXIT_USAGE
    ns = parser.parse_args([*env.args, *args])
    try:
        cfg = config_from_args(ns)
    except ConfigError as exc:
        for w in env.warnings:
            sys.stderr.write(f"raftkv: warning: {w}\n")
        sys.stderr.write(f"raftkv: {name_source(str(exc), env.sources)}\n")
        return EXIT_USAGE
    if cfg.tls.ciphers:  # gRPC reads its cipher list from here, once, as it loads
        from raftkv.server.tlsconfig import GRPC_CIPHERS_ENV

        os.environ[GRPC_CIPHERS_ENV] = ":".join(cfg.tls.ciphers)
    cfg.unsafe_deposed_leader_serves = unsafe_serves
    setup_logging(cfg.log_level, cfg.logger)
    log = logging.getLogger("raftkv")
    if unsafe_serves:
        log.warning("TEST ONLY: %s is set: no check-quorum, leader reads without ReadIndex",
                    unsafe.DEPOSED_LEADER_SERVES)
    for w in env.warnings:
        log.warning("%s", w)
    for used in env.used:
        log.info("recognized and used environment variable %s", used)
    log.info("event loop: %s", loop)
    from raftkv.storage.errors import StorageError

    try:
        eventloop.run(serve(cfg), loop)
    except ConfigError as exc:
        sys.stderr.write(f"raftkv: {exc}\n")
        return EXIT_USAGE
    except StorageError as exc:
        sys.stderr.write(f"raftkv: {exc}\n")
        return EXIT_STORAGE
    except OSError as exc:
        sys.stderr.write(f"raftkv: cannot start: {exc}\n")
        return EXIT_STORAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
