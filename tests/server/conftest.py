"""Fixtures for the server's tests: real raftkv clusters (processes) and real etcd ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd import Cluster, raftkv_cluster, running


@pytest.fixture
def raftkv3(tmp_path: Path) -> Iterator[Cluster]:
    c = raftkv_cluster(tmp_path / "raftkv", 3)
    yield from running(c)


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "etcd", 3)
    try:
        c.start()
        yield c
    finally:
        c.stop()
