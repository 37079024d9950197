"""Storage speed on this machine's disk: WAL group commit beside raw fdatasync, backend
puts, and backend snapshot creation/installation.

Measured, all in one directory (``--dir``, default a temp dir under the current
directory, i.e. the same disk as the data dir would be):
- a raw loop of ``pwrite`` + ``fdatasync`` of one entry-sized record: the disk's floor;
- WAL appends/s and MB/s (framed bytes) at 1, 16 and 256 entries per ``save`` (one
  fdatasync each);
- backend puts/s at 1, 16 and 256 puts per write transaction (default batching:
  10000 txns or 100 ms per SQLite commit, ``maybe_commit`` after each txn);
- ``snapshot_to`` (backup API copy + fsync) and ``Backend.install`` (checksum, quick
  check, rename, reopen) for 100k keys of 256-byte values.
Run: ``.venv/bin/python bench/storage.py [--seconds 2] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from raftkv.raft.types import Entry, HardState
from raftkv.storage.backend import Backend
from raftkv.storage.wal import WAL


def raw_fdatasync(d: Path, size: int, seconds: float) -> float:
    (d / "raw").unlink(missing_ok=True)
    fd = os.open(d / "raw", os.O_RDWR | os.O_CREAT, 0o600)
    os.posix_fallocate(fd, 0, 64 << 20)
    os.fdatasync(fd)
    buf, off, n = b"x" * size, 0, 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        os.pwrite(fd, buf, off)
        os.fdatasync(fd)
        off += size
        n += 1
    dt = time.perf_counter() - t0
    os.close(fd)
    return n / dt


def wal_appends(d: Path, batch: int, payload: int, seconds: float) -> tuple[float, float, float]:
    wal_dir = d / f"wal-{batch}"
    w = WAL.create(wal_dir, b"bench")
    data = b"x" * payload
    index, saves, nbytes = 0, 0, 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        ents = [Entry(1, index + i + 1, data=data) for i in range(batch)]
        before = w._offset
        w.save(HardState(1, 1, index), ents)
        nbytes += w._offset - before if w._offset > before else len(data) * batch
        index += batch
        saves += 1
    dt = time.perf_counter() - t0
    w.close()
    shutil.rmtree(wal_dir)
    return index / dt, nbytes / dt / 1e6, saves / dt


def backend_puts(d: Path, per_txn: int, seconds: float) -> float:
    b = Backend.open(d / f"db-{per_txn}")
    value = b"v" * 256
    n, index = 0, 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        index += 1
        with b.write_txn() as t:
            for _ in range(per_txn):
                t.put(b"key/%09d" % (n % 100_000), value)
                n += 1
            t.end(index)
        b.maybe_commit()
    b.force_commit()
    dt = time.perf_counter() - t0
    b.close()
    return n / dt


def snapshots(d: Path, keys: int) -> dict[str, float]:
    b = Backend.open(d / "leader.db")
    t0 = time.perf_counter()
    value = b"v" * 256
    for start in range(0, keys, 1000):
        with b.write_txn() as t:
            for i in range(start, min(keys, start + 1000)):
                t.put(b"key/%09d" % i, value)
            t.end(start // 1000 + 1)
    b.force_commit()
    fill = time.perf_counter() - t0
    t0 = time.perf_counter()
    digest = b.snapshot_to(d / "snap.db")
    create = time.perf_counter() - t0
    size = os.path.getsize(d / "snap.db")
    b.close()
    f = Backend.open(d / "follower.db")
    f.close()
    t0 = time.perf_counter()
    f = Backend.install(d / "follower.db", d / "snap.db", digest)
    install = time.perf_counter() - t0
    assert f.range(b"key/", b"key0", limit=1)[1] == keys
    f.close()
    return {"fill_s": fill, "create_s": create, "install_s": install, "size_mb": size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--payload", type=int, default=256, help="bytes per WAL entry")
    ap.add_argument("--keys", type=int, default=100_000)
    args = ap.parse_args()
    base = args.dir or Path.cwd()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix="raftkv-bench-") as tmp:
        d = Path(tmp)
        print(f"storage bench in {d} ({platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} cpus)")
        print(f"WAL, {args.payload}-byte entries; raw = a pwrite+fdatasync loop of one "
              "framed entry on the same disk, measured just before each row")
        print(f"{'entries/fsync':>13} {'entries/s':>11} {'MB/s':>7} {'fsyncs/s':>9} "
              f"{'raw fsyncs/s':>13} {'ratio':>6}")
        for batch in (1, 16, 256):
            raw = raw_fdatasync(d, args.payload + 32, args.seconds / 2)
            eps, mbs, sps = wal_appends(d, batch, args.payload, args.seconds)
            print(f"{batch:>13} {eps:>11,.0f} {mbs:>7.1f} {sps:>9,.0f} {raw:>13,.0f} "
                  f"{sps / raw:>6.2f}", flush=True)
        print(f"{'puts/txn':>13} {'puts/s':>11}")
        for per_txn in (1, 16, 256):
            print(f"{per_txn:>13} {backend_puts(d, per_txn, args.seconds):>11,.0f}",
                  flush=True)
        s = snapshots(d, args.keys)
        print(f"backend snapshot, {args.keys:,} keys x 256 B ({s['size_mb']:.1f} MB): "
              f"fill {s['fill_s']:.2f} s, snapshot_to {s['create_s']:.2f} s, "
              f"install {s['install_s']:.2f} s")


if __name__ == "__main__":
    main()
