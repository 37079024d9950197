"""Issue 11 defect 2: installing a received snapshot is crash-atomic. A lagging member
crashes at every step of the install (failpoints), restarts, and ends with every
acknowledged write and the same keys and revisions as the others. Before the fix a crash
after the WAL marker restarted the member with applied = snapshot index over the old
database, so the writes in between were missing on it for good."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.server.kvclient import put_retry
from tests.server.test_durability import FAILPOINT_EXIT, SMALL, converged, write_until
from tests.support.etcd import raftkv_cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv processes

STEPS = [
    "raftBeforeInstallSnapshot",  # nothing written yet
    "raftBeforeSnapshotRename",  # the .snap file half way (temp name)
    "raftAfterInstallSnapFile",  # .snap file, no WAL marker: an orphan to ignore
    "raftAfterInstallWALMarker",  # marker, old database: recovery installs the kept one
    "backendBeforeInstallRename",  # old database files removed, new one not renamed yet
    "raftAfterInstallBackend",  # installed, hard state and entries not yet saved
]


@pytest.mark.parametrize("failpoint", STEPS)
def test_crash_during_snapshot_install(tmp_path: Path, failpoint: str) -> None:
    c = raftkv_cluster(tmp_path, 3, extra_args=SMALL)
    try:
        c.start()
        lagging = c.members[2]
        c.kill(lagging)
        acked = {}
        for i in range(120):
            key = b"c/%04d" % i
            asyncio.run(put_retry(c.members[0].client_url, key, b"y%d" % i))
            acked[key] = b"y%d" % i
        lagging.env = {"RAFTKV_FAILPOINTS": f"{failpoint}@1"}
        c.restart(lagging, wait=False)
        proc = lagging.proc
        assert proc is not None
        wait_until(lambda: not proc.alive(), 60, f"{failpoint} to be reached")
        assert proc.popen is not None and proc.popen.returncode == FAILPOINT_EXIT, (
            proc.log_path.read_text()[-3000:])
        lagging.env = {}
        c.restart(lagging)
        c.wait_healthy()
        asyncio.run(put_retry(lagging.client_url, b"c/final", b"z"))
        acked[b"c/final"] = b"z"
        wait_until(lambda: converged(c, b"c/", acked), 60, "the restarted member to converge")
        leftovers = [p.name for p in (lagging.data_dir / "member" / "snap").iterdir()
                     if p.name.endswith((".snap.db", ".tmp"))]
        assert not leftovers, f"received snapshot files left behind: {leftovers}"
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_lagging_follower_catches_up_by_snapshot_under_steady_writes(tmp_path: Path) -> None:
    """Defect 3: the leader makes the snapshot's database copy through its own read
    connection while it keeps applying writes; the follower catches up and every member
    ends with every acknowledged write."""
    c = raftkv_cluster(tmp_path, 3, extra_args=SMALL)
    try:
        c.start()
        lagging = c.members[2]
        c.kill(lagging)
        for i in range(100):
            asyncio.run(put_retry(c.members[0].client_url, b"w/pre%04d" % i, b"p"))

        async def scenario() -> dict[bytes, bytes]:
            done = asyncio.Event()
            writer = asyncio.ensure_future(write_until(
                c, c.members[:2], done.is_set, b"w/", limit=120))
            await asyncio.to_thread(c.restart, lagging)
            await asyncio.to_thread(
                wait_until, lambda: "installed the leader's snapshot" in (
                    lagging.proc.log_path.read_text()), 60, "a snapshot install")  # type: ignore[union-attr]
            await asyncio.to_thread(c.wait_healthy)
            done.set()
            return await writer

        acked = asyncio.run(scenario())
        acked.update({b"w/pre%04d" % i: b"p" for i in range(100)})
        assert len(acked) > 150
        wait_until(lambda: converged(c, b"w/", acked), 60, "the follower to converge")
        assert lagging.proc is not None and lagging.proc.alive()
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
