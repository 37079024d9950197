"""HashKV with etcdctl 3.6.16 (differential), and the periodic corruption check.

On raftkv as on etcd 3.6.16, ``etcdctl endpoint hashkv --cluster`` shows one hash on all
members at the same revision, before and after a compaction, and HashKV at a compacted
or a future revision fails with the same error. Then the corruption check
(``--corrupt-check-time``): one follower's SQLite row changed behind its back makes the
leader raise CORRUPT for that member through the log; ``etcdctl alarm list`` shows it on
every member and writes are refused with etcd's "corrupt cluster" while reads go on.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster, running
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv and etcd processes


def ctl(c: Cluster, *args: str, endpoints: list[str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.etcdctl(*args, endpoints=endpoints, version="3.6", check=check)


@pytest.fixture(params=["raftkv", "etcd"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "raftkv":
        yield from running(raftkv_cluster(tmp_path / "raftkv", 3))
    else:
        yield from running(Cluster(tmp_path / "etcd", 3, binary=etcd36_bin()))


def _hashes(c: Cluster) -> list[dict[str, int]]:
    out = json.loads(ctl(c, "endpoint", "hashkv", "--cluster", "-w", "json").stdout)
    return [h["HashKV"] for h in out]


def _hashkv(c: Cluster, rev: int) -> grpc.RpcError | rpc_pb2.HashKVResponse:
    with grpc.insecure_channel(c.endpoints[0].removeprefix("http://")) as ch:
        try:
            resp: rpc_pb2.HashKVResponse = rpc_pb2_grpc.MaintenanceStub(ch).HashKV(
                rpc_pb2.HashKVRequest(revision=rev), timeout=10)
            return resp
        except grpc.RpcError as exc:
            return exc


def test_hashkv_equal_across_members(cluster: Cluster) -> None:
    for i in range(30):
        ctl(cluster, "put", f"k{i % 7}", f"v{i}")
    ctl(cluster, "del", "k3")
    ctl(cluster, "put", "k3", "back")
    rev = json.loads(ctl(cluster, "get", "k0", "-w", "json").stdout)["header"]["revision"]

    def agreed() -> list[dict[str, int]] | None:
        hs = _hashes(cluster)
        return hs if len({(h["hash"], h["hash_revision"]) for h in hs}) == 1 else None

    before = wait_until(agreed, 20, "equal hashes on all members")
    assert before[0]["hash_revision"] == rev
    ctl(cluster, "compact", str(rev - 10))
    after = wait_until(agreed, 20, "equal hashes after a compaction")
    assert after[0]["compact_revision"] == rev - 10
    ctl(cluster, "put", "k0", "changed")
    changed = wait_until(agreed, 20, "equal hashes after a write")
    assert changed[0]["hash"] != after[0]["hash"]

    compacted = _hashkv(cluster, rev - 12)
    assert isinstance(compacted, grpc.RpcError)
    assert compacted.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "required revision has been compacted" in (compacted.details() or "")
    future = _hashkv(cluster, rev + 100)
    assert isinstance(future, grpc.RpcError)
    assert "required revision is a future revision" in (future.details() or "")
    at = _hashkv(cluster, rev - 5)
    assert isinstance(at, rpc_pb2.HashKVResponse) and at.compact_revision == rev - 10
    with grpc.insecure_channel(cluster.endpoints[0].removeprefix("http://")) as ch:
        whole = rpc_pb2_grpc.MaintenanceStub(ch).Hash(rpc_pb2.HashRequest(), timeout=10)
    assert whole.hash != 0 and whole.header.revision == rev + 1  # Hash answers too


def _status(c: Cluster, url: str) -> dict[str, int]:
    out = json.loads(ctl(c, "endpoint", "status", "-w", "json", endpoints=[url]).stdout)
    return out[0]["Status"]  # type: ignore[no-any-return]


def test_odd_ones_out() -> None:
    from raftkv.server.corruptcheck import odd_ones_out

    assert odd_ones_out({1: [10, 11, 12]}, 1, 3) == []
    assert odd_ones_out({1: [10, 11], 2: [12]}, 1, 3) == [12]
    assert odd_ones_out({1: [10], 2: [11, 12]}, 1, 3) == [10]  # the leader itself
    assert odd_ones_out({1: [10], 2: [11]}, 1, 3) == [11]  # no majority: trust the leader
    assert odd_ones_out({1: [10], 2: [11], 3: [12]}, 1, 3) == [11, 12]


def _set_value(data_dir: Path, key: bytes, value: bytes) -> None:
    db = sqlite3.connect(data_dir / "member" / "snap" / "db", timeout=10)
    try:
        with db:
            n = db.execute("UPDATE kv SET value = ? WHERE key = ?", (value, key)).rowcount
        assert n == 1
    finally:
        db.close()


@pytest.fixture
def checked(tmp_path: Path) -> Iterator[Cluster]:
    """raftkv with the corruption check every 300 ms."""
    yield from running(raftkv_cluster(tmp_path / "raftkv", 3,
                                       extra_args=["--corrupt-check-time=300ms"]))


@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_corrupt_member_raises_corrupt_alarm(checked: Cluster, victim: str) -> None:
    """The member whose row changed is named, also when it is the leader (the two
    followers agree: a majority)."""
    cl = checked
    for i in range(10):
        ctl(cl, "put", f"k{i}", f"v{i}")
    leader = _status(cl, cl.endpoints[0])["leader"]
    follower = next(m for m in cl.members
                    if (_status(cl, m.client_url)["header"]["member_id"] == leader)
                    == (victim == "leader"))
    fid = _status(cl, follower.client_url)["header"]["member_id"]
    assert ctl(cl, "alarm", "list").stdout.strip() == ""

    _set_value(follower.data_dir, b"k4", b"rot")  # behind the member's back

    want = f"memberID:{fid} alarm:CORRUPT"
    wait_until(lambda: want in ctl(cl, "alarm", "list").stdout, 30, "the CORRUPT alarm")
    for m in cl.members:  # replicated: every member lists it
        assert want in ctl(cl, "alarm", "list", endpoints=[m.client_url]).stdout
    r = ctl(cl, "put", "k0", "refused", check=False)
    assert r.returncode != 0 and "etcdserver: corrupt cluster" in r.stderr, r.stderr
    assert "v0" in ctl(cl, "get", "k0").stdout  # reads are still served
    assert "alarm:CORRUPT" in json.dumps(_status(cl, cl.endpoints[0]).get("errors"))

    _set_value(follower.data_dir, b"k4", b"v4")  # repaired: disarming sticks
    assert want in ctl(cl, "alarm", "disarm").stdout
    assert ctl(cl, "alarm", "list").stdout.strip() == ""
    ctl(cl, "put", "k0", "accepted")


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(raftkv_cluster(tmp_path / "raftkv", 3))


def test_initial_corrupt_check_refuses_to_start(plain: Cluster) -> None:
    """etcd's --experimental-initial-corrupt-check: a member whose data was changed while
    it was down exits (code 3) instead of serving; repaired, it starts."""
    for i in range(10):
        ctl(plain, "put", f"k{i}", f"v{i}")
    m = plain.members[2]
    wait_until(lambda: all(h["hash"] == _hashes(plain)[0]["hash"] for h in _hashes(plain)),
               20, "members agree")
    assert m.proc is not None and m.proc.stop() == 0
    _set_value(m.data_dir, b"k4", b"rot")
    m.extra_args = ["--experimental-initial-corrupt-check"]
    plain.start_member(m, state="existing")
    proc = m.proc
    assert proc is not None
    wait_until(lambda: not proc.alive(), 30, "the corrupt member exits")
    assert proc.popen is not None and proc.popen.returncode == 3
    assert "found data inconsistency with peer" in proc.log_tail()

    _set_value(m.data_dir, b"k4", b"v4")
    m.extra_args = ["--experimental-initial-corrupt-check=true"]
    plain.start_member(m, state="existing")
    wait_until(m.serving, 30, "the repaired member serving")
    assert "v4" in ctl(plain, "get", "k4", "--consistency=s", endpoints=[m.client_url]).stdout
