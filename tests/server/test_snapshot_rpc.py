"""Maintenance.Snapshot with etcdctl 3.6.16, and ``raftkv snapshot status|restore``.

Differential where it makes sense: ``etcdctl snapshot save`` succeeds against raftkv and
against etcd 3.6.16, and both files carry etcd's trailing SHA-256 of the database. Then
raftkv's file is checked (``status``), refused when corrupt (exit code 4, nothing
written), and restored into a new 3-member cluster that serves the same keys at the same
revisions under fresh member and cluster IDs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd import VENV_BIN, Cluster, etcd36_bin, raftkv_cluster, running
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv and etcd processes

EXIT_CORRUPT = 4


def ctl(c: Cluster, *args: str, endpoints: list[str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.etcdctl(*args, endpoints=endpoints, version="3.6", check=check)


def raftkv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "raftkv"), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def raftkv3(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(raftkv_cluster(tmp_path / "raftkv", 3))


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(Cluster(tmp_path / "etcd", 1, binary=etcd36_bin()))


def _fill(c: Cluster) -> None:
    for i in range(20):
        ctl(c, "put", f"k{i:02d}", f"v{i}")
    ctl(c, "put", "k00", "again")
    ctl(c, "del", "k01")


def _save(c: Cluster, path: Path) -> str:
    r = ctl(c, "snapshot", "save", str(path), endpoints=c.endpoints[:1])
    assert f"Snapshot saved at {path}" in r.stdout, r.stdout + r.stderr
    return r.stdout


def _assert_sha_trailer(path: Path) -> None:
    raw = path.read_bytes()
    assert len(raw) % 512 == 32
    assert hashlib.sha256(raw[:-32]).digest() == raw[-32:]


def test_snapshot_save_on_both_has_etcd_framing(raftkv3: Cluster, etcd1: Cluster,
                                                 tmp_path: Path) -> None:
    # etcd's save prints "Server version" only once its version monitor has written the
    # storage version (seconds after bootstrap) and the backend has committed it.
    probe = tmp_path / "probe.db"
    wait_until(lambda: "Server version 3.6.0" in _save(etcd1, probe), 30,
               "etcd's storage version in its snapshot")
    for c, name in ((raftkv3, "raftkv.db"), (etcd1, "etcd.db")):
        _fill(c)
        out = _save(c, tmp_path / name)
        assert "Server version 3.6.0" in out
        _assert_sha_trailer(tmp_path / name)
        assert not (tmp_path / f"{name}.part").exists()


def _kvs(c: Cluster) -> list[dict[str, object]]:
    out = json.loads(ctl(c, "get", "", "--prefix", "-w", "json").stdout)
    return [{k: v for k, v in kv.items()} for kv in out.get("kvs", [])]


def _ids(c: Cluster) -> tuple[int, set[int]]:
    out = json.loads(ctl(c, "member", "list", "-w", "json").stdout)
    return out["header"]["cluster_id"], {m["ID"] for m in out["members"]}


def test_snapshot_status_and_restore(raftkv3: Cluster, tmp_path: Path) -> None:
    _fill(raftkv3)
    ctl(raftkv3, "compact", "5")
    snap = tmp_path / "s.db"
    _save(raftkv3, snap)
    want_kvs = _kvs(raftkv3)
    rev = json.loads(ctl(raftkv3, "get", "k00", "-w", "json").stdout)["header"]["revision"]
    old_cluster, old_members = _ids(raftkv3)
    raftkv3.stop()

    st = raftkv("snapshot", "status", str(snap), "-w", "json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["revision"] == rev
    assert status["totalSize"] == snap.stat().st_size - 32
    assert status["totalKey"] >= 19  # rows kept after the compaction at 5
    table = raftkv("snapshot", "status", str(snap), "-w", "table")
    assert "REVISION" in table.stdout and f"{status['hash']:x}" in table.stdout

    # a corrupt file: a clear error, a distinct exit code, nothing written
    bad = tmp_path / "bad.db"
    raw = bytearray(snap.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    r = raftkv("snapshot", "status", str(bad))
    assert r.returncode == EXIT_CORRUPT and "corrupt" in r.stderr, r.stderr
    new = raftkv_cluster(tmp_path / "restored", 3, token="restored-token")
    m0 = new.members[0]
    r = raftkv("snapshot", "restore", str(bad), f"--data-dir={m0.data_dir}", f"--name={m0.name}",
               f"--initial-cluster={new.initial_cluster()}", "--initial-cluster-token=x",
               f"--initial-advertise-peer-urls={m0.peer_url}")
    assert r.returncode == EXIT_CORRUPT and "SHA-256" in r.stderr, r.stderr
    assert not m0.data_dir.exists() and not list((tmp_path / "restored").glob("*"))

    _restore_into(snap, new)
    again = raftkv("snapshot", "restore", str(snap), f"--data-dir={m0.data_dir}",
                   f"--name={m0.name}", f"--initial-cluster={new.initial_cluster()}",
                   f"--initial-cluster-token={new.token}",
                   f"--initial-advertise-peer-urls={m0.peer_url}")
    assert again.returncode == 3 and "not empty" in again.stderr
    with new:
        assert _kvs(new) == want_kvs  # same keys, values, revisions, versions
        cluster, members = _ids(new)
        assert cluster != old_cluster and not members & old_members and len(members) == 3
        r = ctl(new, "get", "k00", "--rev=4", check=False)
        assert "compacted" in r.stderr
        ctl(new, "put", "after", "restore")
        got = json.loads(ctl(new, "get", "after", "-w", "json").stdout)
        assert got["kvs"][0]["mod_revision"] == rev + 1
        hashes = json.loads(ctl(new, "endpoint", "hashkv", "--cluster", "-w", "json").stdout)
        assert len({h["HashKV"]["hash"] for h in hashes}) == 1


def _restore_into(snap: Path, new: Cluster) -> None:
    for m in new.members:
        r = raftkv("snapshot", "restore", str(snap), f"--data-dir={m.data_dir}",
                   f"--name={m.name}", f"--initial-cluster={new.initial_cluster()}",
                   f"--initial-cluster-token={new.token}",
                   f"--initial-advertise-peer-urls={m.peer_url}")
        assert r.returncode == 0, r.stderr


def test_restore_from_an_etcd_snapshot(etcd1: Cluster, tmp_path: Path) -> None:
    """The stretch: an etcd 3.6.16 (bbolt) snapshot restored into raftkv serves the same
    keys, history, compaction and leases."""
    _fill(etcd1)
    lease = ctl(etcd1, "lease", "grant", "600").stdout.split()[1]
    ctl(etcd1, "put", "leased", "x", f"--lease={lease}")
    ctl(etcd1, "compact", "8")
    ctl(etcd1, "put", "k02", "late")
    snap = tmp_path / "etcd.db"
    _save(etcd1, snap)
    want = _kvs(etcd1)
    rev = json.loads(ctl(etcd1, "get", "k00", "-w", "json").stdout)["header"]["revision"]
    history = ctl(etcd1, "get", "", "--prefix", "--rev=9", "-w", "json").stdout
    etcd1.stop()

    new = raftkv_cluster(tmp_path / "migrated", 3)
    _restore_into(snap, new)
    with new:
        assert _kvs(new) == want
        got = json.loads(ctl(new, "get", "k00", "-w", "json").stdout)["header"]["revision"]
        assert got == rev
        ours = json.loads(ctl(new, "get", "", "--prefix", "--rev=9", "-w", "json").stdout)
        assert ours["kvs"] == json.loads(history)["kvs"]
        assert "compacted" in ctl(new, "get", "k00", "--rev=7", check=False).stderr
        assert lease in ctl(new, "lease", "list").stdout
        ttl = ctl(new, "lease", "timetolive", lease, "--keys").stdout
        assert "granted with TTL(600s)" in ttl and "leased" in ttl, ttl
        ctl(new, "put", "after", "migration")
        after = json.loads(ctl(new, "get", "after", "-w", "json").stdout)
        assert after["kvs"][0]["mod_revision"] == rev + 1


def test_concurrent_and_abandoned_snapshot_streams(raftkv3: Cluster, tmp_path: Path) -> None:
    """Four saves at once all complete (two streams at a time per member); a client that
    goes away mid-stream leaves no database copy behind."""
    import grpc
    from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

    from tests.support.proc import wait_until

    url = raftkv3.endpoints[0]
    with grpc.insecure_channel(url.removeprefix("http://")) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(12):  # 12 MB: more than the HTTP/2 windows can hold unread
            kv.Put(rpc_pb2.PutRequest(key=b"big%d" % i, value=bytes([i]) * 1_000_000),
                   timeout=30)
    procs = [subprocess.Popen([str(etcd36_bin("etcdctl")), f"--endpoints={url}", "snapshot",
                               "save", str(tmp_path / f"c{i}.db")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(4)]
    try:
        for p in procs:
            assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i in range(4):
        _assert_sha_trailer(tmp_path / f"c{i}.db")

    copies = raftkv3.members[0].data_dir / "member" / "snapshot-rpc"
    with grpc.insecure_channel(url.removeprefix("http://")) as ch:
        stream = rpc_pb2_grpc.MaintenanceStub(ch).Snapshot(rpc_pb2.SnapshotRequest())
        first = next(stream)
        assert first.remaining_bytes > 0
        assert list(copies.iterdir())  # the copy streams ...
        stream.cancel()
    wait_until(lambda: not list(copies.iterdir()), 10, "the abandoned copy removed")


def test_restore_bump_revision_mark_compacted(tmp_path: Path) -> None:
    """etcdutl's --bump-revision N --mark-compacted: same keys, the revision N higher,
    everything older compacted (as Kubernetes restores want, so watch caches restart)."""
    src = raftkv_cluster(tmp_path / "src", 1)
    snap = tmp_path / "s.db"
    with src:
        _fill(src)
        _save(src, snap)
        want = _kvs(src)
        rev = json.loads(ctl(src, "get", "k00", "-w", "json").stdout)["header"]["revision"]
    new = raftkv_cluster(tmp_path / "bumped", 1)
    m = new.members[0]
    flags = [f"--data-dir={m.data_dir}", f"--name={m.name}",
             f"--initial-cluster={new.initial_cluster()}",
             f"--initial-cluster-token={new.token}", f"--initial-advertise-peer-urls={m.peer_url}"]
    r = raftkv("snapshot", "restore", str(snap), *flags, "--bump-revision=1000")
    assert r.returncode == 2 and "--mark-compacted required" in r.stderr
    assert not m.data_dir.exists()
    r = raftkv("snapshot", "restore", str(snap), *flags, "--bump-revision=1000",
               "--mark-compacted")
    assert r.returncode == 0, r.stderr
    with new:
        assert _kvs(new) == want
        got = json.loads(ctl(new, "get", "k00", "-w", "json").stdout)["header"]["revision"]
        assert got == rev + 1000
        assert "compacted" in ctl(new, "get", "k00", f"--rev={rev}", check=False).stderr
        ctl(new, "put", "next", "1")
        after = json.loads(ctl(new, "get", "next", "-w", "json").stdout)
        assert after["kvs"][0]["mod_revision"] == rev + 1001
