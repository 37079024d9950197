"""Event-loop lag of a 3-member raftkv cluster during the heavy operations of issue 11
(defect 6): a Range over 100k keys, a defragmentation and a compaction of 100k revisions,
while a client keeps writing; and issue 12's whole-database reads: a Maintenance.Snapshot
stream and a HashKV.

The three members run embedded in one process and one event loop (tests/server/inproc.py),
so any synchronous stretch on one member delays all three: stricter than separate
processes. The database (100k keys written twice: 200k revisions) is built once through
the backend's write transactions on member 0 and copied to the others before they start,
so every member holds the same history. Loop lag comes from each member's LoopLag (the
``raftkv_server_loop_lag_seconds`` histogram on /metrics) over the window of each
operation. ``--mode sync`` runs the same operations the way the server did before the fix
(one synchronous call on the loop) for comparison.

Run: ``.venv/bin/python -m bench.loop_lag [--keys 100000] [--mode paged|sync]
[--repeat 1] [--out bench/results/loop_lag.txt]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aetcd.rpc import rpc_pb2

import raftkv
from raftkv.mvcc import kv
from raftkv.server import maintenance
from raftkv.storage.backend import Backend
from tests.server.inproc import InProcCluster


@dataclass
class OpResult:
    name: str
    seconds: float
    p99: float
    worst: float
    samples: int


@dataclass
class Outcome:
    ops: list[OpResult] = field(default_factory=list)
    leader_changes: int = 0
    writes_ok: int = 0
    writes_failed: int = 0
    heartbeat: float = 0.0


def preload(db: Path, keys: int) -> None:
    """Every key written twice, one revision per write, as apply would (consistent index
    unchanged: these rows stand for history the members already agree on)."""
    b = Backend.open(db, initial_revision=1)
    ci = b.consistent_index()
    for _round in range(2):
        for i in range(keys):
            with b.write_txn() as w:
                w.put(b"heavy/%08d" % i, b"v%d-%d" % (_round, i))
                w.end(ci)
    b.close()


async def _writer(node: raftkv.Node, stop: asyncio.Event, out: Outcome) -> None:
    i = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(node.put(b"live/%06d" % i, b"x"), 5)
            out.writes_ok += 1
        except Exception:  # counted: the figure is how many failed
            out.writes_failed += 1
        i += 1
        await asyncio.sleep(0.02)


async def run(workdir: Path, keys: int, mode: str, repeat: int = 1) -> Outcome:
    """``repeat``: how many times each read-only operation runs back to back inside its
    window (a 100k-key range lasts about a second: some 60-80 lag samples, whose p99 is
    their maximum; three runs give ~200, whose p99 is not just the worst sample)."""
    c = InProcCluster(workdir, heartbeat_ms=100, election_ms=1000, max_txn_ops=1024)
    out = Outcome(heartbeat=0.1)
    try:
        await c.start()
        lead = await c.wait_leader()
        await lead.put(b"seed", b"1")
        await c.wait_applied(lead.server.applied_index)
        await c.stop()  # members that applied more than member 0 re-apply it on its copy
        dbs = [cfg.data_dir / "member" / "snap" / "db" for cfg in c.configs]
        preload(dbs[0], keys)
        for db in dbs[1:]:
            for suffix in ("-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            shutil.copyfile(dbs[0], db)
        for i in range(len(c.configs)):
            await c.start_member(i)
        lead = await c.wait_leader()
        lead_id = lead.server.id
        changes0 = sum(n.server.metrics.leader_changes._value.get() for n in c.running())
        follower = next(n for n in c.running() if n is not lead)
        stop = asyncio.Event()
        writer = asyncio.create_task(_writer(lead, stop, out))
        await asyncio.sleep(1.0)  # a steady state before measuring
        t0 = time.monotonic()
        await asyncio.sleep(2.0)
        mon = lead.server.loop_lag
        out.ops.append(OpResult("(idle, for reference)", 2.0, mon.percentile(99, t0),
                                mon.worst(t0), len(mon.window(t0))))

        async def timed(name: str, op: Callable[[], Awaitable[object]],
                        times: int = repeat) -> None:
            t0 = time.monotonic()
            for _ in range(times):
                await op()
            t1 = time.monotonic()
            mon = lead.server.loop_lag
            await asyncio.sleep(0.1)  # the timer that the operation delayed reports now
            out.ops.append(OpResult(name, t1 - t0, mon.percentile(99, t0, t1),
                                    mon.worst(t0, t1), len(mon.window(t0, t1))))

        req = rpc_pb2.RangeRequest(key=b"heavy/", range_end=b"heavy0", serializable=True)
        if mode == "sync":
            async def range_sync() -> None:
                kv.range_(follower.server.backend, req)

            async def defrag_sync() -> None:
                follower.server.backend.defragment()

            async def snapshot_sync() -> None:
                follower.server.backend.snapshot_to(workdir / "snapshot-sync.db")

            async def hashkv_sync() -> None:
                follower.server.backend.hash_kv()

            await timed("range 100k keys", range_sync)
            await timed("defragment", defrag_sync)
            await timed("snapshot (Maintenance)", snapshot_sync)
            await timed("hashkv", hashkv_sync)
        else:
            got = await follower.get(b"heavy/", b"heavy0", serializable=True)
            assert got.count == keys, got.count
            del got

            async def range_() -> None:
                await follower.get(b"heavy/", b"heavy0", serializable=True)

            async def snapshot() -> None:
                sent = 0
                async for resp in maintenance.snapshot_stream(follower.server):
                    sent += len(resp.blob)
                assert sent > keys, sent

            await timed("range 100k keys", range_)
            await timed("defragment", follower.server.defragment)
            await timed("snapshot (Maintenance)", snapshot)
            await timed("hashkv", lambda: maintenance.hash_kv(follower.server, 0))
        rev = lead.server.backend.current_revision()

        async def compact() -> None:
            if mode == "sync":
                for n in c.running():
                    n.server.backend.compact(rev - 1)
                return
            await lead.server.propose(rpc_pb2.CompactionRequest(revision=rev - 1))
            while any(n.server.backend.compact_pending() for n in c.running()):
                await asyncio.sleep(0.05)

        await timed("compact 100k revisions", compact, 1)
        await asyncio.sleep(1.0)
        stop.set()
        await writer
        changes1 = sum(n.server.metrics.leader_changes._value.get() for n in c.running())
        out.leader_changes = int(changes1 - changes0)
        if any(n.server.lead != lead_id for n in c.running()):
            out.leader_changes = max(out.leader_changes, 1)
        return out
    finally:
        await c.stop()


def report(out: Outcome, keys: int, mode: str, repeat: int = 1) -> str:
    lines = [f"mode={mode} keys={keys} repeat={repeat} heartbeat={out.heartbeat * 1000:.0f}ms "
             "(3 members in one event loop)",
             f"{'operation':<26}{'seconds':>9}{'lag p99 ms':>12}{'lag max ms':>12}"
             f"{'samples':>9}"]
    for op in out.ops:
        lines.append(f"{op.name:<26}{op.seconds:>9.2f}{op.p99 * 1000:>12.1f}"
                     f"{op.worst * 1000:>12.1f}{op.samples:>9}")
    lines.append(f"leader changes: {out.leader_changes}; client writes meanwhile: "
                 f"{out.writes_ok} ok, {out.writes_failed} failed")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--mode", choices=["paged", "sync"], default="paged")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each read-only operation inside its window")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as d:
        out = asyncio.run(run(Path(d), a.keys, a.mode, a.repeat))
    text = report(out, a.keys, a.mode, a.repeat)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError), open(a.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
