"""A real anomaly, caught: serializable reads from a member paused with SIGSTOP are stale.

Against real etcd 3.6.16 (the control group): a follower is paused and its peer links
are cut; a write completes through the leader; the follower resumes still cut off, so it
stays behind; serializable gets sent to it are answered from its old state. The checkers
must flag them. The control run does the same with linearizable gets, which etcd answers
only after a ReadIndex round with the leader, so its history must pass: the flag is
about staleness, not about pausing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.history.checks import check_all, write_failure
from tests.e2e.history.cluster import ProxiedCluster
from tests.e2e.history.history import KV, History, Status
from tests.e2e.history.workload import PREFIX, Workload
from tests.support.etcd import etcd36_bin
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow

KEY = f"{PREFIX}0"


async def paused_reads(tmp_path: Path, serializable: bool) -> History:
    cluster = ProxiedCluster(tmp_path / "cluster", 3, binary=etcd36_bin())
    wl: Workload | None = None
    try:
        await asyncio.to_thread(cluster.start)
        leader = await cluster.leader()
        follower = next(n for n in cluster.names if n != leader)
        lead_ep = cluster.member(leader).client_url
        foll_ep = cluster.member(follower).client_url
        wl = Workload(cluster.endpoints, seed=0)
        first = await wl.put(0, KEY, "v1", lead_ep)
        assert first.status is Status.OK, first.error

        async def follower_has_v1() -> bool:
            op = await wl.get(9, KEY, foll_ep, serializable=True)
            return op.status is Status.OK and op.results[0] is not None

        while not await follower_has_v1():  # readiness: the follower applied v1
            await asyncio.sleep(0.05)
        wl.history.ops = [first]  # the readiness probes are not part of the experiment

        await asyncio.to_thread(cluster.pause, follower)
        try:
            # Cut its peer links before the write, so v2 never reaches it (not even into a
            # socket buffer) and it is still behind when it resumes: whether it would catch
            # up before answering then does not depend on scheduling after SIGCONT.
            cluster.hub.isolate(follower)
            second = await wl.put(0, KEY, "v2", lead_ep)
            assert second.status is Status.OK, second.error
        finally:
            await asyncio.to_thread(cluster.resume, follower)
        try:
            wl.config.timeout = 10.0
            reads = [asyncio.create_task(wl.get(1 + i, KEY, foll_ep, serializable))
                     for i in range(4)]
            # the window the follower is behind: serializable reads are answered from its
            # old state; linearizable ones wait for a ReadIndex round with the leader
            await asyncio.sleep(1.5)
        finally:
            cluster.hub.heal()
        await asyncio.gather(*reads)
        await asyncio.gather(*(wl.get(10 + i, KEY, foll_ep, serializable) for i in range(4)))
        await asyncio.to_thread(wait_until, lambda: cluster.member(follower).health(), 30,
                                "follower healthy")
        return wl.history
    finally:
        if wl is not None:
            await wl.close()
        await asyncio.to_thread(cluster.stop)


async def test_serializable_reads_from_a_paused_member_are_flagged(tmp_path: Path) -> None:
    history = await paused_reads(tmp_path, serializable=True)
    history.scenario, history.seed = "paused-serializable-reads", 0
    reads = [o for o in history.ops if o.name == "get" and o.status is Status.OK]
    assert reads, "no read completed"
    report = check_all(history, final=False)
    path = write_failure(history, report, tmp_path / "artifacts")
    stale = [o for o in reads if isinstance(o.results[0], KV) and o.results[0].value == "v1"]
    assert stale, f"etcd served no stale read this time:\n{report.summary()}"
    lin, rev = report.verdicts[0], report.verdicts[1]
    assert not lin.ok and not rev.ok, report.summary()
    flagged = {i for v in (lin, rev) for f in v.findings for i in f.ops}
    assert flagged & {o.id for o in stale}, report.summary()
    assert path.exists()


async def test_linearizable_reads_from_a_paused_member_pass(tmp_path: Path) -> None:
    history = await paused_reads(tmp_path, serializable=False)
    reads = [o for o in history.ops if o.name == "get" and o.status is Status.OK]
    assert reads, "no read completed"
    assert all(isinstance(o.results[0], KV) and o.results[0].value == "v2" for o in reads)
    report = check_all(history, final=False)
    assert report.ok, report.summary()
