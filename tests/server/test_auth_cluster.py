"""Auth on three-member clusters, raftkv and etcd 3.6.16 alike: a token from one member
works on another (the Authenticate entry reached every member), a lease keep-alive sent
to a follower is forwarded to the leader with the caller's token, and a watch on a range
the user may not read is created canceled with "permission denied"; and the corruption
check still compares members (it needs a root token for its peers' HashKV)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.server.test_auth_etcdctl_diff import _setup_alice, _token
from tests.server.test_hashkv import _set_value
from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real clusters


def _channel(endpoint: str) -> grpc.Channel:
    return grpc.insecure_channel(endpoint.removeprefix("http://"))


def _leader_and_follower(c: Cluster) -> tuple[str, str]:
    leader = follower = ""
    for m in c.members:
        md = (("token", _token(m.client_url)),)
        with _channel(m.client_url) as ch:
            st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=10,
                                                         metadata=md)
        if st.leader == st.header.member_id:
            leader = m.client_url
        else:
            follower = m.client_url
    assert leader and follower
    return leader, follower


@pytest.mark.parametrize("server", ["raftkv", "etcd"])
def test_tokens_keepalives_and_watches_across_members(tmp_path: Path, server: str) -> None:
    c = (raftkv_cluster(tmp_path / "c", 3) if server == "raftkv"
         else Cluster(tmp_path / "c", 3, binary=etcd36_bin()))
    try:
        c.start()
        _setup_alice(c)
        leader, follower = _leader_and_follower(c)
        md = (("token", _token(leader)),)  # issued by the leader, used on the follower
        with _channel(follower) as ch:
            lease = rpc_pb2_grpc.LeaseStub(ch).LeaseGrant(
                rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10, metadata=md)
            rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"app/k", value=b"v",
                                                           lease=lease.ID),
                                        timeout=10, metadata=md)
            ka = list(rpc_pb2_grpc.LeaseStub(ch).LeaseKeepAlive(
                iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease.ID)]), timeout=10, metadata=md))
            assert [(r.ID, r.TTL) for r in ka] == [(lease.ID, 60)]
            with pytest.raises(grpc.RpcError) as denied:
                rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"other", value=b"v"),
                                            timeout=10, metadata=md)
            assert (denied.value.code(), denied.value.details()) == (
                grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
            watch = rpc_pb2_grpc.WatchStub(ch).Watch(iter([
                rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"other")),
            ]), timeout=10, metadata=md)
            first = next(iter(watch))
            watch.cancel()
            assert (first.created, first.canceled, first.cancel_reason) == (
                True, True,
                "rpc error: code = PermissionDenied desc = etcdserver: permission denied")
    finally:
        c.stop()


def test_corruption_check_still_compares_with_auth_on(tmp_path: Path) -> None:
    """Peers answer HashKV to root only while auth is on: the leader's check must get a
    root token of its own, or it would compare nothing and never raise CORRUPT."""
    c = raftkv_cluster(tmp_path / "c", 3, extra_args=["--corrupt-check-time=300ms"])
    try:
        c.start()
        _setup_alice(c)

        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(etcd36_bin("etcdctl")), f"--endpoints={c.endpoints[0]}",
                                   "--user=root:rootpw", *args],
                                  capture_output=True, text=True, timeout=60)

        for i in range(5):
            assert ctl("put", f"k{i}", f"v{i}").returncode == 0
        _, follower = _leader_and_follower(c)
        victim = next(m for m in c.members if m.client_url == follower)
        _set_value(victim.data_dir, b"k2", b"rot")  # behind the member's back
        wait_until(lambda: "alarm:CORRUPT" in ctl("alarm", "list").stdout, 30,
                   "the CORRUPT alarm with auth on")
    finally:
        c.stop()
