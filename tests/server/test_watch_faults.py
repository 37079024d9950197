"""Watch under faults on a 3-member raftkv: a watch resumed from the next revision on
another member after the member serving it is SIGKILLed sees every write exactly once,
in order; a member cut off from its leader (the other two SIGSTOPped) ends the watches
that asked for a leader (etcd's ``hasleader``, clientv3's WithRequireLeader) with etcd's
"no leader" error, refuses new ones, and keeps the others open; a watch on a member that
catches up by installing the leader's snapshot gets every revision it missed (the hub's
restore: its watchers catch up from the new backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aetcd
import grpc
import pytest

from tests.server.test_durability import SMALL
from tests.server.watchsupport import CtlWatch, create, metric, open_watch, read, target
from tests.support.etcd import Cluster, Member, raftkv_cluster, running
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv processes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = raftkv_cluster(tmp_path / "raftkv", 3)
    yield from running(c)


def roles(c: Cluster) -> tuple[Member, list[Member]]:
    def leader() -> Member | None:
        found = [m for m in c.members if metric(m.metrics_url, "etcd_server_is_leader") == 1]
        return found[0] if len(found) == 1 else None
    lead = wait_until(leader, 30, "one leader")
    return lead, [m for m in c.members if m is not lead]


async def test_resume_on_another_member_after_a_kill(cluster: Cluster) -> None:
    lead, (f1, f2) = roles(cluster)
    n = 300
    written: list[int] = []
    async with aetcd.Client(host="127.0.0.1", port=lead.client_port) as writer:
        start = (await writer.put(b"r/start", b"")).header.revision + 1

        async def write() -> None:
            for i in range(n):
                written.append((await writer.put(f"r/{i % 7}".encode(), str(i).encode()))
                               .header.revision)

        wtask = asyncio.create_task(write())
        seen: list[int] = []
        served_by = [f1]
        nxt = start
        while len(seen) < n:
            m = served_by[-1]
            try:
                async with aetcd.Client(host="127.0.0.1", port=m.client_port) as client:
                    watch = await client.watch_prefix(b"r/", start_revision=nxt)
                    it = watch.__aiter__()
                    while len(seen) < n:
                        ev = await asyncio.wait_for(it.__anext__(), 10)
                        seen.append(ev.kv.mod_revision)
                        nxt = ev.kv.mod_revision + 1
                        if len(seen) == n // 3 and m is f1:
                            cluster.kill(f1)  # mid-stream, writes still going on
            except (aetcd.exceptions.ClientError, TimeoutError, StopAsyncIteration) as exc:
                assert m is f1, f"the watch on {m.name} broke: {exc!r}"
                served_by.append(f2)
        await wtask
    assert served_by == [f1, f2]
    assert seen == written, "gap or duplicate across the resumption"


async def test_require_leader_watch_ends_on_a_member_cut_off(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    _, (f, _) = roles(cluster)
    others = [m for m in cluster.members if m is not f]
    ctl = CtlWatch(tmp_path / "ctl.log", f.client_url, "rl")  # etcdctl asks for a leader
    try:
        async with grpc.aio.insecure_channel(target(f.client_url)) as ch:
            strict = await open_watch(ch, create(b"rl"), require_leader=True)
            lax = await open_watch(ch, create(b"rl"))
            assert (await read(strict)).created and (await read(lax)).created
            for m in others:
                cluster.pause(m)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(strict.read(), 30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert err.value.details() == "etcdserver: no leader"
            assert ctl.wait_exit(30) != 0
            assert "no leader" in ctl.text()
            # a new one is refused at once; the one that did not ask stays open
            with pytest.raises(grpc.aio.AioRpcError) as err2:  # at the write or the read
                again = await open_watch(ch, create(b"rl"), require_leader=True)
                await asyncio.wait_for(again.read(), 10)
            assert err2.value.details() == "etcdserver: no leader"
            assert not lax.done()
            lax.cancel()
    finally:
        ctl.stop()
        for m in others:
            cluster.resume(m)


async def test_watch_across_a_snapshot_install(tmp_path: Path) -> None:
    c = raftkv_cluster(tmp_path / "raftkv", 3, extra_args=SMALL)
    try:
        c.start()
        lead, (lagging, _) = roles(c)
        async with grpc.aio.insecure_channel(target(lagging.client_url)) as ch:
            call = await open_watch(ch, create(b"s/", range_end=b"s0"))
            created = await read(call)
            assert created.created
            c.pause(lagging)
            written: list[int] = []
            # more appends than the leader keeps in flight to the paused member (256
            # messages): the rest is compacted away and only a snapshot can bring it back.
            # One put at a time, so each is an append of its own (the leader merges what
            # one Ready holds into one append per follower)
            async with aetcd.Client(host="127.0.0.1", port=lead.client_port) as w:
                for j in range(400):
                    written.append((await w.put(b"s/%d" % (j % 9), b"%d" % j)).header.revision)
            c.resume(lagging)
            seen: list[int] = []
            while len(seen) < len(written):
                resp = await asyncio.wait_for(call.read(), 60)
                seen += [ev.kv.mod_revision for ev in resp.events]
            call.cancel()
        assert "installed the leader's snapshot" in lagging.proc.log_tail(400)  # type: ignore[union-attr]
        assert seen == written
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
