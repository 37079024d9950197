"""Fixtures for diag's tests: real etcd clusters (3.5.1 and Debian's 3.4.23), a runner for
the real ``diag`` command, and etcdctl's JSON for comparison.

Invariant: every cluster a fixture starts is stopped by pid in the fixture's teardown,
also when the test fails; logs are printed on failure through ``cluster.logs()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd import Cluster, etcd_bin, raftkv_cluster

DIAG = Path(sys.executable).parent / "diag"


@dataclass
class DiagResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_diag(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None
             ) -> DiagResult:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", **(env or {})}
    p = subprocess.run([str(DIAG), *args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    return DiagResult(p.returncode, p.stdout, p.stderr)


def etcdctl_json(cluster: Cluster, *args: str, version: str = "3.5",
                 endpoints: list[str] | None = None) -> Any:
    r = cluster.etcdctl("-w", "json", *args, version=version, endpoints=endpoints)
    return json.loads(r.stdout)


def start_cluster(workdir: Path, size: int, version: str) -> Cluster:
    c = (raftkv_cluster(workdir, size) if version == "raftkv"
         else Cluster(workdir, size=size, binary=etcd_bin("etcd", version)))
    try:
        c.start()
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    return c


@pytest.fixture(scope="session")
def etcd35(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-member etcd 3.5.1 cluster shared by read-only tests (never killed)."""
    c = start_cluster(tmp_path_factory.mktemp("etcd35"), 3, "3.5")
    yield c
    c.stop()


@pytest.fixture(scope="session")
def etcd34(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-member Debian etcd 3.4.23 cluster shared by read-only tests."""
    c = start_cluster(tmp_path_factory.mktemp("etcd34"), 3, "3.4")
    yield c
    c.stop()


@pytest.fixture(scope="session")
def raftkv3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-member raftkv cluster shared by read-only tests (metrics on their own URLs)."""
    c = start_cluster(tmp_path_factory.mktemp("raftkv"), 3, "raftkv")
    yield c
    c.stop()


def metrics_args(cluster: Cluster) -> list[str]:
    """raftkv serves /metrics on --listen-metrics-urls only: tell diag where."""
    if not cluster.members[0].health_on_metrics:
        return []
    return ["--metrics-urls", ",".join(f"{m.metrics_url}/metrics" for m in cluster.members)]


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A 3-member etcd 3.5.1 cluster a test may kill members of."""
    c = start_cluster(tmp_path / "etcd", 3, "3.5")
    yield c
    c.stop()


def eps(cluster: Cluster) -> str:
    return ",".join(cluster.endpoints)
