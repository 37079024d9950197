"""MemberUpdate (etcd's `member update ID --peer-urls=...`): the apply side without an event
loop, and end to end with etcd 3.6.16's etcdctl on a 3-member raftkv: the new peer URL is
replicated to every member (MemberList on each shows it), every peer's transport dials it
(the moved member rejoins, and stays reachable from each of the others alone), and
unknown IDs, taken URLs and invalid URLs get etcd's errors. etcd 3.6.16 passes the same
end-to-end test, except that its server accepts invalid URLs (only etcdctl checks them)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import errors
from raftkv.mvcc.lease import Lessor
from raftkv.raft import ConfChange, ConfChangeType, ConfState, confchange
from raftkv.server.apply import Applier
from raftkv.server.membership import Member, Membership
from raftkv.storage.backend import Backend
from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster, running
from tests.support.proc import free_port, wait_until

A, B = 0xA, 0xB


def _applier(path: Path) -> Applier:
    b = Backend.open(path, initial_revision=1)
    ms = Membership({A: Member(A, "a", ["http://127.0.0.1:1"], ["http://127.0.0.1:11"]),
                     B: Member(B, "b", ["http://127.0.0.1:2"], ["http://127.0.0.1:12"])})
    return Applier(b, Lessor(b, 2), ms, lambda: False, lambda: 0.0)


def _update(mid: int, urls: list[str]) -> ConfChange:
    return ConfChange(ConfChangeType.UPDATE_NODE, mid, Member(mid, "", urls).to_json())


def test_update_changes_only_peer_urls_and_refusals_change_nothing(tmp_path: Path) -> None:
    ap = _applier(tmp_path / "db")
    assert ap.apply_membership(_update(B, ["http://127.0.0.1:3"]), 5) is None
    b = ap.membership.members[B]
    assert (b.name, b.peer_urls, b.client_urls) == ("b", ["http://127.0.0.1:3"],
                                                     ["http://127.0.0.1:12"])
    assert ap.backend.consistent_index() == 5
    stored = Membership.decode(ap.backend.meta_get("members"))
    assert stored.members[B].peer_urls == ["http://127.0.0.1:3"]
    before = ap.membership.encode()
    assert isinstance(ap.apply_membership(_update(B, ["http://127.0.0.1:1"]), 6),
                      errors.PeerURLExist)
    assert isinstance(ap.apply_membership(_update(0xC, ["http://127.0.0.1:9"]), 7),
                      errors.MemberNotFound)
    assert ap.membership.encode() == before and ap.backend.consistent_index() == 7


def test_update_node_leaves_the_raft_configuration_alone() -> None:
    cs = ConfState((A, B), ())
    assert confchange.apply(cs, _update(B, ["http://x:1"])) == cs
    assert confchange.problem(cs, _update(0xC, ["http://x:1"])) is not None


# --- end to end with etcdctl 3.6.16 ----------------------------------------------------------


NO_LEADER = "etcdserver: no leader"


def _etcdctl(c: Cluster, *args: str, endpoint: str | None) -> subprocess.CompletedProcess[str]:
    """etcdctl 3.6.16, asked again while the answer is "no leader" (an election on a loaded
    machine: etcd answers so too, and a client retries), for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        r = c.etcdctl(*args, endpoints=[endpoint] if endpoint else None, version="3.6",
                      check=False)
        if NO_LEADER not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.1)  # between attempts, as a client backs off


def _ctl(c: Cluster, *args: str, endpoint: str | None = None,
         check: bool = True) -> str:
    r = _etcdctl(c, *args, endpoint=endpoint)
    if check:
        assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def _json(c: Cluster, *args: str, endpoint: str | None = None) -> Any:
    r = _etcdctl(c, *args, "-w", "json", endpoint=endpoint)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _members(c: Cluster, endpoint: str) -> dict[str, list[str]]:
    out = _json(c, "member", "list", endpoint=endpoint)
    return {m.get("name", ""): m.get("peerURLs", []) for m in out["members"]}


def _id(c: Cluster, name: str) -> int:
    out = _json(c, "member", "list")
    return next(int(m["ID"]) for m in out["members"] if m.get("name") == name)


@pytest.fixture(params=["raftkv", "etcd-3.6.16"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = (raftkv_cluster(tmp_path, 3) if request.param == "raftkv"
         else Cluster(tmp_path, 3, binary=etcd36_bin()))
    yield from running(c)


@pytest.mark.slow
def test_member_update_moves_a_member_to_a_new_peer_port(cluster: Cluster) -> None:
    c = cluster
    raftkv = c.members[0].health_on_metrics
    m0, m1, m2 = c.members
    mid = _id(c, "m2")
    # etcd's errors: an unknown ID, a URL another member has, invalid URLs
    out = _ctl(c, "member", "update", "1234", f"--peer-urls=http://127.0.0.1:{free_port()}",
               check=False)
    assert "etcdserver: member not found" in out
    out = _ctl(c, "member", "update", f"{mid:x}", f"--peer-urls={m0.peer_url}", check=False)
    assert "etcdserver: Peer URLs already exists" in out
    out = _ctl(c, "member", "update", f"{mid:x}", "--peer-urls=foo", check=False)
    assert "URL scheme must be http, https, unix, or unixs" in out  # etcdctl's own check
    # the server's own check (etcd 3.6.16 would store these and lose the member)
    with grpc.insecure_channel(m0.client_url.removeprefix("http://")) as ch:
        stub = rpc_pb2_grpc.ClusterStub(ch)
        for bad in (["foo"], [], ["http://127.0.0.1"], ["http://127.0.0.1:99999"]
                    ) if raftkv else ():
            with pytest.raises(grpc.RpcError) as ei:
                stub.MemberUpdate(rpc_pb2.MemberUpdateRequest(ID=mid, peerURLs=bad),
                                  timeout=10)
            assert ei.value.code() is grpc.StatusCode.INVALID_ARGUMENT, bad
            assert ei.value.details() == "etcdserver: given member URLs are invalid"
    assert all(_members(c, m.client_url)["m2"] == [m2.peer_url] for m in c.members)

    new_port = free_port()
    new_url = f"http://127.0.0.1:{new_port}"
    # asked of the moved member itself, which cannot hear of the commit once the others
    # dial its new URL: it must hand the request to the leader and relay the answer
    out = _ctl(c, "member", "update", f"{mid:x}", f"--peer-urls={new_url}",
               endpoint=m2.client_url)
    assert f"Member {mid:16x} updated" in out
    for m in (m0, m1):  # m2 is cut off until it listens on the new port
        def moved(ep: str = m.client_url) -> bool:
            return _members(c, ep)["m2"] == [new_url]
        wait_until(moved, 10, f"{m.name} lists m2 at {new_url}")
    _ctl(c, "put", "while-moving", "1", endpoint=m0.client_url)  # quorum kept

    c.kill(m2)
    stale = c.initial_cluster()  # as etcd, a restart ignores --initial-cluster:
    m2.peer_port = new_port
    m2.extra_args = [f"--initial-cluster={stale}"]  # one not updated does no harm
    c.restart(m2)
    c.wait_healthy(30, [m2])
    assert _members(c, m2.client_url)["m2"] == [new_url]
    _ctl(c, "put", "via-m2", "2", endpoint=m2.client_url)
    assert "via-m2\n2" in _ctl(c, "get", "via-m2", endpoint=m0.client_url)
    # each of the others reaches m2 at its new URL on its own: kill one, then the other
    for other in (m0, m1):
        c.kill(other)
        alive = next(m for m in (m0, m1) if m is not other)
        c.wait_healthy(30, [alive, m2])
        _ctl(c, "put", f"without-{other.name}", "3", endpoint=m2.client_url)
        c.restart(other)
        c.wait_healthy(30, [other])
    assert "without-m1\n3" in _ctl(c, "get", "without-m1", endpoint=m0.client_url)
