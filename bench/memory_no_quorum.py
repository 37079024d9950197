"""Memory of a raftkv member that lost its quorum while clients keep writing and reading
(issue 11, defect 8): its RSS and its bounded queues over time.

A 3-member cluster of real processes starts; two members are SIGKILLed; ``--clients``
concurrent clients then send Puts and linearizable Ranges to the survivor for
``--seconds`` (each with a 2 s deadline, retried at once on any error). Every
``--every`` seconds the survivor's RSS (from /proc) and its gauges from /metrics
(pending reads, pending proposals, peer inbox, apply backlog) are recorded. With every
queue bounded the curve flattens; before the fix timed-out reads piled up in memory.

Run: ``.venv/bin/python -m bench.memory_no_quorum [--seconds 300] [--clients 32]
[--out bench/results/memory_no_quorum.txt]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.support.etcd import raftkv_cluster

GAUGES = ["raftkv_server_pending_reads", "etcd_server_proposals_pending",
          "raftkv_server_peer_inbox_messages", "raftkv_server_apply_backlog_entries"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def gauges(metrics_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url + "/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            out[name] = float(value)
    return out


async def client(url: str, n: int, stop: asyncio.Event, sent: list[int]) -> None:
    async with grpc.aio.insecure_channel(url.removeprefix("http://")) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        i = 0
        while not stop.is_set():
            try:
                if i % 2:
                    await kv.Put(rpc_pb2.PutRequest(key=b"m/%d/%d" % (n, i), value=b"v" * 100),
                                 timeout=2)
                else:
                    await kv.Range(rpc_pb2.RangeRequest(key=b"m/"), timeout=2)
            except grpc.aio.AioRpcError:
                pass  # expected: no quorum; the figure is the server's memory
            sent[0] += 1
            i += 1


async def run(workdir: Path, seconds: float, clients: int, every: float) -> list[str]:
    c = raftkv_cluster(workdir, 3)
    rows = [f"{'t s':>6}{'rss MB':>9}{'requests':>10}"
            + "".join(f"{g.removeprefix('raftkv_server_').removeprefix('etcd_server_'):>20}"
                      for g in GAUGES)]
    try:
        c.start()
        survivor = c.members[0]
        assert survivor.proc is not None
        for m in c.members[1:]:
            c.kill(m)
        stop = asyncio.Event()
        sent = [0]
        tasks = [asyncio.ensure_future(client(survivor.client_url, i, stop, sent))
                 for i in range(clients)]
        t0 = time.monotonic()
        while (t := time.monotonic() - t0) <= seconds:
            g = await asyncio.to_thread(gauges, survivor.metrics_url)
            rows.append(f"{t:>6.0f}{rss_mb(survivor.proc.pid):>9.1f}{sent[0]:>10}"
                        + "".join(f"{g.get(name, float('nan')):>20.0f}" for name in GAUGES))
            print(rows[-1], flush=True)
            await asyncio.sleep(every)
        stop.set()
        await asyncio.gather(*tasks)
        return rows
    finally:
        c.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as d:
        rows = asyncio.run(run(Path(d), a.seconds, a.clients, a.every))
    head = (f"# {a.clients} clients (Put + linearizable Range, 2 s deadlines) against the "
            f"one member left of 3, for {a.seconds:.0f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text("\n".join([head, *rows]) + "\n")


if __name__ == "__main__":
    main()
