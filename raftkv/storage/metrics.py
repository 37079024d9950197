"""Disk latency histograms with etcd's names and buckets, in a registry the node serves.

Invariants: the registry is module-global and holds exactly the storage metrics; bucket
bounds are etcd's (0.001 s x 2^k for k = 0..13, 14 buckets). The WAL observes every
fdatasync it issues; the backend observes every SQLite commit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

ETCD_DISK_BUCKETS: tuple[float, ...] = tuple(0.001 * 2**k for k in range(14))

REGISTRY = CollectorRegistry(auto_describe=True)

WAL_FSYNC_SECONDS = Histogram(
    "etcd_disk_wal_fsync_duration_seconds",
    "The latency distributions of fsync called by WAL.",
    buckets=ETCD_DISK_BUCKETS,
    registry=REGISTRY,
)

BACKEND_COMMIT_SECONDS = Histogram(
    "etcd_disk_backend_commit_duration_seconds",
    "The latency distributions of commit called by backend.",
    buckets=ETCD_DISK_BUCKETS,
    registry=REGISTRY,
)
