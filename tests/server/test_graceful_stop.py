"""Issue 11 defect 11: SIGTERM on the leader hands leadership to a caught-up follower
before the process exits (as etcd's Stop), so a rolling restart costs no election
timeout. With a 3 s election timeout, the survivors know a new leader well before one
election timeout after the SIGTERM; without the transfer they must first miss the old
leader for a whole election timeout (and before the fix they did)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.server.kvclient import put_retry, target
from tests.support.etcd import raftkv_cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv processes

ELECTION_S = 3.0


async def _status(url: str) -> rpc_pb2.StatusResponse:
    async with grpc.aio.insecure_channel(target(url)) as ch:
        return await rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(),
                                                             timeout=2)


def test_sigterm_on_the_leader_transfers_leadership(tmp_path: Path) -> None:
    c = raftkv_cluster(tmp_path, 3, extra_args=[
        f"--election-timeout={int(ELECTION_S * 1000)}", "--heartbeat-interval=100"])
    try:
        c.start()
        asyncio.run(put_retry(c.members[0].client_url, b"k", b"v"))
        st = asyncio.run(_status(c.members[0].client_url))
        old = st.leader
        ids = {asyncio.run(_status(m.client_url)).header.member_id: m for m in c.members}
        leader = ids[old]
        survivors = [m for m in c.members if m is not leader]
        assert leader.proc is not None
        t0 = time.monotonic()
        leader.proc.signal(signal.SIGTERM)

        def new_leader() -> int:
            leads = {asyncio.run(_status(m.client_url)).leader for m in survivors}
            return leads.pop() if len(leads) == 1 and 0 not in leads and old not in leads \
                else 0

        lead = wait_until(new_leader, 4 * ELECTION_S, "the survivors to agree on a leader")
        took = time.monotonic() - t0
        assert took < ELECTION_S, f"a new leader took {took:.2f}s: elected, not handed over"
        wait_until(lambda: not leader.proc.alive(), 30, "the old leader to exit")  # type: ignore[union-attr]
        assert leader.proc.popen is not None and leader.proc.popen.returncode == 0
        assert f"leadership transferred to {lead:x}" in leader.proc.log_path.read_text()
        asyncio.run(put_retry(survivors[0].client_url, b"k", b"after"))
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_sigterm_on_the_leader_skips_a_voter_whose_stream_is_down(tmp_path: Path) -> None:
    """The stopping leader must not pick a voter it has no stream to (etcd's
    longestConnected). With both followers caught up, the choice ties on match and
    falls to the higher id; that follower is killed first, so only the connected()
    filter makes the leader hand over to the other one."""
    c = raftkv_cluster(tmp_path, 3, extra_args=[
        f"--election-timeout={int(ELECTION_S * 1000)}", "--heartbeat-interval=100"])
    try:
        c.start()
        asyncio.run(put_retry(c.members[0].client_url, b"k", b"v"))
        by_id = {asyncio.run(_status(m.client_url)).header.member_id: m for m in c.members}
        old = asyncio.run(_status(c.members[0].client_url)).leader
        leader = by_id[old]
        dead_id, live_id = sorted((i for i in by_id if i != old), reverse=True)

        def caught_up() -> bool:
            return len({asyncio.run(_status(m.client_url)).raftIndex
                        for m in c.members}) == 1
        wait_until(caught_up, 30, "every member to hold the same log")
        dead = by_id[dead_id]
        assert dead.proc is not None and leader.proc is not None
        dead.proc.signal(signal.SIGKILL)
        wait_until(lambda: f"lost stream to peer {dead_id:x}" in leader.proc.log_path.read_text(),  # type: ignore[union-attr]
                   30, "the leader to see the killed follower's stream close")
        leader.proc.signal(signal.SIGTERM)
        wait_until(lambda: not leader.proc.alive(), 30, "the old leader to exit")  # type: ignore[union-attr]
        log = leader.proc.log_path.read_text()
        assert f"transferring leadership to {dead_id:x}" not in log
        assert f"transferring leadership to {live_id:x}" in log
        assert f"leadership transferred to {live_id:x}" in log
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_sigterm_on_the_leader_stops_waiting_when_the_chosen_voter_goes(tmp_path: Path) -> None:
    """The stopping leader waits for its chosen voter to take over only while that voter's
    stream is up: the voter is frozen (SIGSTOP, so its stream stays up and the leader
    picks it), then killed once the transfer has started. The leader must give up on
    the lost stream, not wait out the election timeout (10 s here, so the two are told
    apart by the reason it logs, not by a clock)."""
    c = raftkv_cluster(tmp_path, 3, extra_args=["--election-timeout=10000",
                                                "--heartbeat-interval=100"])
    try:
        c.start()
        asyncio.run(put_retry(c.members[0].client_url, b"k", b"v"))
        by_id = {asyncio.run(_status(m.client_url)).header.member_id: m for m in c.members}
        old = asyncio.run(_status(c.members[0].client_url)).leader
        leader = by_id[old]
        chosen_id = max(i for i in by_id if i != old)  # ties on match fall to the higher id

        def caught_up() -> bool:
            return len({asyncio.run(_status(m.client_url)).raftIndex
                        for m in c.members}) == 1
        wait_until(caught_up, 30, "every member to hold the same log")
        chosen = by_id[chosen_id]
        assert chosen.proc is not None and leader.proc is not None
        chosen.proc.signal(signal.SIGSTOP)
        leader.proc.signal(signal.SIGTERM)
        wait_until(lambda: f"transferring leadership to {chosen_id:x}"
                   in leader.proc.log_path.read_text(), 30,  # type: ignore[union-attr]
                   "the leader to start the transfer to the frozen follower")
        chosen.proc.signal(signal.SIGKILL)
        wait_until(lambda: not leader.proc.alive(), 30, "the old leader to exit")  # type: ignore[union-attr]
        log = leader.proc.log_path.read_text()
        assert f"transfer to {chosen_id:x} did not complete (its stream was lost)" in log
        assert "(timed out)" not in log
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
