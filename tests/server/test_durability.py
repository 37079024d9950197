"""Crashes and restarts of real raftkv processes: failpoints between every step of the
Ready loop, whole-cluster SIGKILL, snapshots with WAL release, and a member catching up
through InstallSnapshot. After each, every acknowledged write is there and all members
converge on the same data.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest

from tests.server.kvclient import get_prefix, put, put_retry
from tests.support.etcd import Cluster, Member, raftkv_cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv processes

FAILPOINT_EXIT = 86
SMALL = [
    "--snapshot-count=20",
    "--experimental-snapshot-catchup-entries=5",
    "--experimental-wal-segment-bytes=65536",
]


async def write_until(c: Cluster, targets: list[Member], stop: object, prefix: bytes,
                      limit: float = 30.0) -> dict[bytes, bytes]:
    """Write distinct keys round-robin until ``stop()`` is true; return the acknowledged."""
    acked: dict[bytes, bytes] = {}
    i = 0
    deadline = time.monotonic() + limit
    while not stop() and time.monotonic() < deadline:  # type: ignore[operator]
        m = targets[i % len(targets)]
        key, value = prefix + b"%05d" % i, b"v%d" % i
        try:
            await put(m.client_url, key, value, timeout=3)
            acked[key] = value
        except grpc.aio.AioRpcError:
            pass  # unknown outcome: not counted as acknowledged
        i += 1
    return acked


def converged(c: Cluster, prefix: bytes, acked: dict[bytes, bytes]) -> bool:
    views = [asyncio.run(get_prefix(m.client_url, prefix)) for m in c.members]
    if any(v != views[0] for v in views):
        return False
    missing = [k for k in acked if k not in views[0] or views[0][k][0] != acked[k]]
    assert not missing, f"acknowledged writes lost: {missing[:5]}"
    return True


def _cluster(tmp_path: Path, extra: list[str] | None = None) -> Cluster:
    return raftkv_cluster(tmp_path, 3, extra_args=extra or [])


def crash_at_then_converge(c: Cluster, failpoint: str, nth: int, lead: bool) -> None:
    """Arm ``failpoint`` on member 0 for its ``nth`` hit (so the crash lands while the
    client writes), make it the leader if ``lead``, write through the others until it
    dies there, restart it: nothing acknowledged is lost and all converge."""
    try:
        c.start()
        victim, others = c.members[0], c.members[1:]
        victim.env = {"RAFTKV_FAILPOINTS": f"{failpoint}@{nth}"}
        c.restart(victim)
        c.wait_healthy(members=others)
        if lead:
            c.wait_healthy()
            status = json.loads(c.etcdctl("endpoint", "status", "-w", "json",
                                          endpoints=[victim.client_url]).stdout)
            c.etcdctl("move-leader", f"{status[0]['Status']['header']['member_id']:x}")
        assert victim.proc is not None
        proc = victim.proc
        acked = asyncio.run(write_until(c, others, lambda: not proc.alive(), b"fp/"))
        assert not proc.alive(), f"{failpoint} was never reached"
        assert proc.popen is not None and proc.popen.returncode == FAILPOINT_EXIT
        victim.env = {}
        c.restart(victim)
        c.wait_healthy()
        acked[b"fp/final"] = b"x"
        asyncio.run(put_retry(victim.client_url, b"fp/final", b"x"))
        wait_until(lambda: converged(c, b"fp/", acked), 30, "members to converge")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


@pytest.mark.parametrize("failpoint", [
    "raftBeforeSave", "raftAfterSave", "raftBeforeApply", "raftAfterApply",
    "raftBeforeSaveSnap", "raftAfterSaveSnap", "raftAfterWALRelease",
    "raftBeforeSnapshotRename", "backendBeforeCommit", "backendAfterCommit",
    "raftBeforeFollowerSend",
])
def test_crash_at_failpoint_then_converge(tmp_path: Path, failpoint: str) -> None:
    crash_at_then_converge(_cluster(tmp_path, SMALL), failpoint,
                           3 if "Snap" in failpoint else 40, lead=False)


@pytest.mark.parametrize("failpoint", ["raftBeforeLeaderSend", "raftAfterLeaderSend"])
def test_leader_crash_around_its_parallel_send_then_converge(tmp_path: Path,
                                                             failpoint: str) -> None:
    """The leader sends its appends before writing them itself (etcd's parallel write):
    killed after sending and before its own fdatasync, its followers may hold entries it
    lacks. These points are reached only while leading, so the crash is the leader's."""
    crash_at_then_converge(_cluster(tmp_path), failpoint, 40, lead=True)


def test_whole_cluster_sigkill_and_restart(tmp_path: Path) -> None:
    c = _cluster(tmp_path)
    try:
        c.start()
        acked = asyncio.run(write_until(c, c.members, lambda: False, b"k/", limit=3))
        assert len(acked) > 10
        for m in c.members:
            c.kill(m)
        for m in c.members:
            c.restart(m, wait=False)
        c.wait_healthy()
        wait_until(lambda: converged(c, b"k/", acked), 30, "members to converge")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_snapshots_release_wal_and_survive_restart(tmp_path: Path) -> None:
    c = _cluster(tmp_path, SMALL)
    try:
        c.start()
        m0 = c.members[0]
        acked = {}
        for i in range(300):
            key = b"s/%04d" % i
            asyncio.run(put_retry(m0.client_url, key, b"x" * 300))
            acked[key] = b"x" * 300
        wal = m0.data_dir / "member" / "wal"
        snaps = list((m0.data_dir / "member" / "snap").glob("*.snap"))
        assert snaps, "no snapshot file was written"
        segments = sorted(p.name for p in wal.iterdir() if p.name.endswith(".wal"))
        assert not segments[0].startswith("0000000000000000-"), (
            f"the first WAL segment was never released: {segments}")
        c.kill(m0)
        c.restart(m0)
        c.wait_healthy()
        wait_until(lambda: converged(c, b"s/", acked), 30, "members to converge")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_lagging_member_catches_up_by_snapshot(tmp_path: Path) -> None:
    c = _cluster(tmp_path, SMALL)
    try:
        c.start()
        lagging = c.members[2]
        c.kill(lagging)
        acked = {}
        for i in range(200):
            key = b"c/%04d" % i
            asyncio.run(put_retry(c.members[0].client_url, key, b"y"))
            acked[key] = b"y"
        c.restart(lagging)
        c.wait_healthy()
        wait_until(lambda: converged(c, b"c/", acked), 60, "the lagging member to catch up")
        assert lagging.proc is not None
        assert "installed the leader's snapshot" in lagging.proc.log_path.read_text()
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
