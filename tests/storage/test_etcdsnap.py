"""Converting etcd (bbolt) snapshots: a damaged file is refused with one error, never
a crash, a hang or a half-written database. The snapshot comes from a real etcd 3.6.16
member; the damage is random byte flips (seeded: ``RAFTKV_SEED``, printed)."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.storage import etcdsnap, snapfile
from raftkv.storage.bbolt import BoltError
from tests.support.etcd import Cluster, etcd36_bin

pytestmark = pytest.mark.slow  # one etcd process


@pytest.fixture(scope="module")
def etcd_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("etcd")
    c = Cluster(d / "c", 1, binary=etcd36_bin())
    with c, grpc.insecure_channel(c.endpoints[0].removeprefix("http://")) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(300):
            kv.Put(rpc_pb2.PutRequest(key=b"key/%03d" % (i % 40), value=b"v" * (i % 300)),
                   timeout=10)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"key/007"), timeout=10)
        c.etcdctl("snapshot", "save", str(d / "s.db"), version="3.6")
    return d / "s.db"


def test_convert_keeps_every_revision(etcd_snapshot: Path, tmp_path: Path) -> None:
    size = snapfile.checked_size(etcd_snapshot)
    assert snapfile.kind(etcd_snapshot) == "bbolt"
    rev = etcdsnap.convert(etcd_snapshot, size, tmp_path / "db")
    assert rev == 302  # 300 puts and a delete after the empty store's revision 1
    conn = sqlite3.connect(tmp_path / "db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 301
        assert conn.execute("SELECT tombstone FROM kv WHERE rev = 302").fetchone()[0] == 1
    finally:
        conn.close()


def test_damaged_snapshots_are_refused_cleanly(etcd_snapshot: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("RAFTKV_SEED", random.randrange(2**32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    raw = etcd_snapshot.read_bytes()[:-32]
    outcomes = {"converted": 0, "refused": 0}
    for i in range(150):
        bad = bytearray(raw)
        for _ in range(rng.choice([1, 4, 32])):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        f = tmp_path / f"bad{i}.db"
        f.write_bytes(bytes(bad))
        dest = tmp_path / f"out{i}.db"
        try:
            etcdsnap.convert(f, len(bad), dest)
            outcomes["converted"] += 1
        except (BoltError, snapfile.SnapshotFileError):
            outcomes["refused"] += 1
        f.unlink()
        for p in tmp_path.glob(f"out{i}.db*"):
            p.unlink()
    print(outcomes)
    assert outcomes["refused"] > 0


def test_restore_cli_refuses_a_truncated_etcd_snapshot(etcd_snapshot: Path,
                                                        tmp_path: Path) -> None:
    cut = tmp_path / "cut.db"
    cut.write_bytes(etcd_snapshot.read_bytes()[: 3 * 4096])
    r = subprocess.run([str(Path(os.sys.executable).parent / "raftkv"), "snapshot", "restore",
                        str(cut), "--skip-hash-check", f"--data-dir={tmp_path / 'd'}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 4, r.stderr
    assert not (tmp_path / "d").exists()
