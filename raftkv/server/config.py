"""A member's configuration, with etcd's flag names, defaults and member/cluster ID rules.

Invariants: URLs are validated at construction (a bad value is a ConfigError with one
sentence naming the flag); member and cluster IDs are derived exactly as etcd derives
them (SHA-1 over sorted peer URLs and the cluster token; the cluster ID over the sorted
member IDs), so a cluster started with the same flags gets the same IDs every time. A
member that restarts on its data dir is not held to ``--initial-cluster`` (as etcd: its WAL
knows).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from raftkv.server.flagtypes import go_duration
from raftkv.server.tlsconfig import (
    TLSConfigError,
    TLSInfo,
    TLSSettings,
    check_files,
    check_settings,
)
from raftkv.storage.wal import WAL


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


def parse_urls(flag: str, value: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"--{flag} needs at least one URL")
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
            raise ConfigError(f"--{flag}: {u!r} is not a URL like http://127.0.0.1:2379")
    return urls


def parse_initial_cluster(value: str) -> dict[str, list[str]]:
    """``name=url,name=url`` -> {name: [urls]} (a name may repeat for several URLs)."""
    out: dict[str, list[str]] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, url = part.partition("=")
        if not sep or not name:
            raise ConfigError(f"--initial-cluster: {part!r} is not name=peer-url")
        out.setdefault(name, []).extend(parse_urls("initial-cluster", url))
    if not out:
        raise ConfigError("--initial-cluster is empty")
    return out


def parse_duration(flag: str, value: str) -> float:
    """A Go duration (``10m``, ``1s``, ``1m30s``, ``500ms``) in seconds, as etcd's flags."""
    try:
        return go_duration(value)
    except ValueError:
        raise ConfigError(
            f"--{flag}: {value!r} is not a duration like 10m, 1s or 500ms") from None


def member_id(peer_urls: list[str], token: str) -> int:
    """etcd's computeMemberID without a time component."""
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    return int.from_bytes(hashlib.sha1(b).digest()[:8], "big")


def cluster_id(member_ids: list[int]) -> int:
    b = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(b).digest()[:8], "big")


@dataclass
class ServerConfig:
    name: str = "default"
    data_dir: Path = Path("default.etcd")
    listen_peer_urls: list[str] = field(default_factory=lambda: ["http://localhost:2380"])
    initial_advertise_peer_urls: list[str] = field(
        default_factory=lambda: ["http://localhost:2380"])
    listen_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379"])
    advertise_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379"])
    listen_metrics_urls: list[str] = field(default_factory=list)
    initial_cluster: dict[str, list[str]] = field(
        default_factory=lambda: {"default": ["http://localhost:2380"]})
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = 100_000
    quota_backend_bytes: int = 2 << 30
    max_request_bytes: int = 1536 * 1024
    max_txn_ops: int = 128
    # maintenance (raftkv.cli_maintenance): etcd's --corrupt-check-time in seconds (0: off)
    # and --experimental-initial-corrupt-check
    corrupt_check_time: float = 0.0
    initial_corrupt_check: bool = False
    snapshot_catchup_entries: int = 5000  # entries kept behind a snapshot (etcd's default)
    wal_segment_bytes: int = 64 << 20
    watch_progress_notify_interval: float = 600.0  # seconds (etcd's default: 10m)
    log_level: str = "info"
    logger: str = "text"
    # etcd's LeaseCheckpoint (off by default in etcd; on in raftkv: one small entry per
    # interval per 1000 leases buys a lease that outlives leader changes at its true age)
    lease_checkpoint: bool = True
    lease_checkpoint_interval_s: float = 300.0  # etcd's default (5 min; not a flag in etcd)
    # etcd's --auth-token (only "simple": member-memory tokens) and --auth-token-ttl (s)
    auth_token: str = "simple"
    auth_token_ttl_s: int = 300
    # TLS (raftkv.server.tlsconfig): the client port's (also the https metrics URLs'), the
    # peer port's, and what both share
    client_tls: TLSInfo = field(default_factory=TLSInfo)
    peer_tls: TLSInfo = field(default_factory=lambda: TLSInfo(prefix="peer-"))
    tls: TLSSettings = field(default_factory=TLSSettings)
    # TEST ONLY (raftkv.server.unsafe): no check-quorum, linearizable reads served locally
    # by a member that believes it leads; never set in production
    unsafe_deposed_leader_serves: bool = False

    def validate(self) -> None:
        if self.initial_cluster_state not in ("new", "existing"):
            raise ConfigError(
                f"--initial-cluster-state must be 'new' or 'existing', not "
                f"{self.initial_cluster_state!r}")
        if self.heartbeat_interval_ms <= 0:
            raise ConfigError("--heartbeat-interval must be a positive number of milliseconds")
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms:
            raise ConfigError(
                f"--election-timeout ({self.election_timeout_ms} ms) must be at least 5 times "
                f"--heartbeat-interval ({self.heartbeat_interval_ms} ms)")
        if self.election_timeout_ms > 50_000:
            raise ConfigError("--election-timeout is too long (at most 50000 ms)")
        if self.lease_checkpoint_interval_s <= 0:
            raise ConfigError("--lease-checkpoint-interval must be a positive duration")
        if self.snapshot_count <= 0:
            raise ConfigError("--snapshot-count must be positive")
        if self.auth_token != "simple":
            raise ConfigError(f"--auth-token {self.auth_token!r} is not supported: raftkv "
                              "has simple tokens only (jwt is not implemented)")
        if self.auth_token_ttl_s <= 0:
            raise ConfigError("--auth-token-ttl must be a positive number of seconds")
        if self.corrupt_check_time < 0:
            raise ConfigError("--corrupt-check-time cannot be negative")
        if self.snapshot_catchup_entries < 1:
            raise ConfigError("--experimental-snapshot-catchup-entries must be at least 1")
        if self.wal_segment_bytes < 4096:
            raise ConfigError("--experimental-wal-segment-bytes must be at least 4096")
        if not 0 < self.watch_progress_notify_interval < 1e9:
            raise ConfigError("--watch-progress-notify-interval must be a positive duration")
        if self.quota_backend_bytes < 0:
            raise ConfigError("--quota-backend-bytes cannot be negative")
        self._validate_tls()
        if self.restarting():
            return  # the member and its cluster come from the WAL (etcd ignores
            # --initial-cluster on a restart too, e.g. after `member update` moved it)
        if self.name not in self.initial_cluster:
            raise ConfigError(
                f"--initial-cluster has no entry for this member's --name {self.name!r}")
        if sorted(self.initial_cluster[self.name]) != sorted(self.initial_advertise_peer_urls):
            raise ConfigError(
                f"--initial-cluster gives {self.name} the peer URLs "
                f"{self.initial_cluster[self.name]}, but --initial-advertise-peer-urls says "
                f"{self.initial_advertise_peer_urls}")

    def _validate_tls(self) -> None:
        """https URLs need their side's certificate; the files must be usable."""
        sides = (("listen-client-urls", self.listen_client_urls, self.client_tls),
                 ("listen-metrics-urls", self.listen_metrics_urls, self.client_tls),
                 ("listen-peer-urls", self.listen_peer_urls, self.peer_tls))
        for flag, urls, info in sides:
            https = [u for u in urls if u.startswith("https://")]
            if https and not info.enabled:
                raise ConfigError(
                    f"--{flag} {https[0]} is https, but neither {info.flag('cert-file')}/"
                    f"{info.flag('key-file')} nor {info.flag('auto-tls')} is given")
        try:
            check_settings(self.tls)
            check_files(self.client_tls)
            check_files(self.peer_tls)
        except TLSConfigError as exc:
            raise ConfigError(str(exc)) from None
        https_client = [u for u in self.listen_client_urls if u.startswith("https://")]
        if self.tls.min_version == "TLS1.3" and https_client:
            # gRPC's Python server has no minimum-version setting (nor an environment
            # variable): accepting the flag would advertise a floor that is not there
            raise ConfigError(
                f"--tls-min-version=TLS1.3 cannot be enforced on the gRPC client port "
                f"{https_client[0]} (Python gRPC's server has no TLS version setting), so "
                "raftkv refuses it there; use TLS1.2 or plain-text client URLs (the peer "
                "and metrics ports enforce TLS1.3)")

    def restarting(self) -> bool:
        """The data dir holds a WAL: --initial-cluster and its token no longer matter."""
        return WAL.exists(self.data_dir / "member" / "wal")

    @property
    def member_id(self) -> int:
        return member_id(self.initial_advertise_peer_urls, self.initial_cluster_token)

    def initial_members(self) -> dict[int, tuple[str, list[str]]]:
        return {member_id(urls, self.initial_cluster_token): (name, urls)
                for name, urls in self.initial_cluster.items()}

    @property
    def cluster_id(self) -> int:
        return cluster_id(list(self.initial_members()))

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // self.heartbeat_interval_ms)
