"""The proxies' faults do to a real etcd 3.6.16 cluster (the control group) what they say,
per directed link.

- cut isolating the leader: the other two elect a new leader; the old one cannot commit;
- one-way drop of the leader's outbound links: followers stop hearing it and elect a new
  leader, although the old leader still hears them;
- delay on the leader's outbound links: a write through the leader takes at least the
  delay (it needs a follower's acknowledgement), and is fast again after healing;
- every member is identified on its peer connections (no unidentified dialers among
  raft traffic), so the faults land on the links they name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from raftkv.netfault.proxy import CUT, DROP, delay
from tests.e2e.history import etcdapi
from tests.e2e.history.cluster import ProxiedCluster
from tests.e2e.history.history import Status
from tests.e2e.history.workload import PREFIX, Workload
from tests.support.etcd import etcd36_bin

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ProxiedCluster]:
    c = ProxiedCluster(tmp_path / "cluster", 3, binary=etcd36_bin())
    try:
        await asyncio.to_thread(c.start)
        yield c
    finally:
        await asyncio.to_thread(c.stop)


async def leader_seen_by(c: ProxiedCluster, names: list[str], other_than: str,
                         timeout: float = 15.0) -> str:
    """The leader, other than ``other_than``, all of ``names`` agree on (polls until then)."""
    deadline = time.monotonic() + timeout
    while True:
        ids: dict[int, str] = {}
        leaders = set()
        for n in c.names:
            try:
                st = await etcdapi.status(c.member(n).client_url, 0.5)
            except Exception:
                continue
            ids[st.header.member_id] = n
            if n in names:
                leaders.add(st.leader)
        if len(leaders) == 1 and (lid := leaders.pop()) in ids and ids[lid] != other_than:
            return ids[lid]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{names} agree on no leader")
        await asyncio.sleep(0.1)  # polling an election


async def test_cut_isolating_the_leader(cluster: ProxiedCluster) -> None:
    old = await cluster.leader()
    rest = [n for n in cluster.names if n != old]
    # every directed link carried identified raft traffic
    assert all(cluster.hub.link_stats(a, b).bytes_passed > 0 for a in cluster.names
               for b in cluster.names if a != b)
    cluster.hub.isolate(old, CUT)
    new = await leader_seen_by(cluster, rest, other_than=old)
    assert new in rest
    wl = Workload(cluster.endpoints, seed=0)
    wl.config.timeout = 1.0
    try:
        stuck = await wl.put(0, f"{PREFIX}0", "x", cluster.member(old).client_url)
        assert stuck.status is not Status.OK
        ok = await wl.put(0, f"{PREFIX}0", "y", cluster.member(new).client_url)
        assert ok.status is Status.OK, ok.error
    finally:
        await wl.close()
    assert cluster.hub.link_stats(old, new).resets + cluster.hub.link_stats(new, old).resets > 0
    cluster.hub.heal()
    await asyncio.to_thread(cluster.wait_healthy, 30)


async def test_one_way_drop_of_leader_outbound(cluster: ProxiedCluster) -> None:
    old = await cluster.leader()
    rest = [n for n in cluster.names if n != old]
    cluster.hub.isolate(old, DROP, inbound=False)
    new = await leader_seen_by(cluster, rest, other_than=old)
    assert new != old
    # inbound traffic to the old leader still flowed while its outbound was dropped
    assert any(cluster.hub.link_stats(r, old).bytes_passed > 0 for r in rest)
    assert any(cluster.hub.link_stats(old, r).bytes_dropped > 0 for r in rest)
    cluster.hub.heal()
    await asyncio.to_thread(cluster.wait_healthy, 30)


async def test_delay_on_leader_links_slows_writes(cluster: ProxiedCluster) -> None:
    leader = await cluster.leader()
    ep = cluster.member(leader).client_url
    wl = Workload(cluster.endpoints, seed=0)
    wl.config.timeout = 5.0
    try:
        cluster.hub.isolate(leader, delay(0.3), inbound=False)
        slow = await wl.put(0, f"{PREFIX}0", "slow", ep)
        assert slow.status is Status.OK, slow.error
        assert slow.complete is not None
        assert (slow.complete - slow.invoke) / 1e9 >= 0.3
        cluster.hub.heal()
        await wl.put(0, f"{PREFIX}0", "drain", ep)  # bytes queued before heal arrive in order
        fast = await wl.put(0, f"{PREFIX}0", "fast", ep)
        assert fast.status is Status.OK and fast.complete is not None
        assert (fast.complete - fast.invoke) / 1e9 < 0.3
    finally:
        await wl.close()
