"""Watch figures, raftkv next to etcd 3.6.16 in one run (issue 12):

1. fan-out: ``--watchers`` watch streams (over 10 channels) on one member of a
   ``--size``-member cluster, all on the prefix ``b/``, while ``--writers`` clients Put
   ``--writes`` keys under it through the same member. Measured: writes/s, events/s
   delivered to all watchers together (watchers x writes, from the first write to the
   last delivery), and the lag from the last acknowledged write to the last delivery.
   Every watcher must receive every write, or the run says so.
2. slow watcher: one Watch stream whose created response is read and then nothing, on a member
   receiving ``--slow-mb`` MB of Puts (16 KiB values); the member's RSS over time, next to
   a control run with the same writes and no watcher (etcd's RSS includes its mmapped
   bbolt file, which grows with the writes in both runs). The member must still serve.

Clients are Python (grpc.aio) on the same 2-core machine as the servers: the figures are
for comparing the two servers under the same client, not absolute capacities.

Run: ``.venv/bin/python -m bench.watch [--writes 2000] [--watchers 100] [--slow-mb 64]
[--out bench/results/watch.md]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from aetcd import rpc

from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster

SERVERS = ("raftkv", "etcd 3.6.16")


def cluster(server: str, workdir: Path, size: int) -> Cluster:
    if server == "raftkv":
        return raftkv_cluster(workdir, size)
    return Cluster(workdir, size, binary=etcd36_bin())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


WATCH_GAUGES = ("etcd_debugging_mvcc_slow_watcher_total",
                "etcd_debugging_mvcc_pending_events_total")


def gauges(metrics_url: str) -> str:
    """The slow-watcher and pending-event gauges (both servers export etcd's names)."""
    text = urllib.request.urlopen(metrics_url + "/metrics", timeout=5).read().decode()
    got = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in WATCH_GAUGES:
            got[name.removeprefix("etcd_debugging_mvcc_")] = float(value)
    return " ".join(f"{k}={v:.0f}" for k, v in sorted(got.items()))


def channel(url: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(url.removeprefix("http://"),
                                     options=[("grpc.max_receive_message_length", 64 << 20)])


def _create(prefix: bytes) -> rpc.WatchRequest:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    return rpc.WatchRequest(create_request=rpc.WatchCreateRequest(key=prefix, range_end=end))


@dataclass
class Fanout:
    writes_per_s: float
    events_per_s: float
    lag_s: float
    delivered: int
    expected: int


async def _watcher(ch: grpc.aio.Channel, want: int, ready: asyncio.Event, counts: list[int],
                   i: int, last: list[float], stop: asyncio.Event) -> None:
    async def reqs() -> AsyncIterator[rpc.WatchRequest]:
        yield _create(b"b/")
        await stop.wait()

    call = rpc.WatchStub(ch).Watch(reqs())
    try:
        async for resp in call:
            if resp.created:
                ready.set()
            counts[i] += len(resp.events)
            if resp.events:
                last[0] = time.monotonic()
            if counts[i] >= want:
                return
    finally:
        call.cancel()


async def _writer(ch: grpc.aio.Channel, keys: range) -> None:
    kv = rpc.KVStub(ch)
    for k in keys:
        await kv.Put(rpc.PutRequest(key=b"b/%d" % k, value=b"v" * 100), timeout=10)


async def fanout(url: str, watchers: int, writers: int, writes: int) -> Fanout:
    chans = [channel(url) for _ in range(10)]
    stop = asyncio.Event()
    counts = [0] * watchers
    last = [0.0]
    readies = [asyncio.Event() for _ in range(watchers)]
    tasks = [asyncio.create_task(_watcher(chans[i % 10], writes, readies[i], counts, i, last,
                                          stop)) for i in range(watchers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        t0 = time.monotonic()
        step = -(-writes // writers)
        await asyncio.gather(*(_writer(chans[w % 10], range(w * step, min(writes, (w + 1) * step)))
                               for w in range(writers)))
        t_written = time.monotonic()
        await asyncio.wait(tasks, timeout=120)
        delivered = sum(counts)
        return Fanout(writes / (t_written - t0), delivered / (last[0] - t0),
                      max(0.0, last[0] - t_written), delivered, watchers * writes)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in chans:
            await ch.close()


async def slow(url: str, metrics_url: str, pid: int, megabytes: int, with_watcher: bool,
               every: float) -> tuple[list[tuple[float, float]], str]:
    """RSS samples (seconds, MB) while writing; how the watch stream ended and the
    member's watch gauges then."""
    ch, wch = channel(url), channel(url)
    stop = asyncio.Event()
    call = None
    samples: list[tuple[float, float]] = []
    try:
        if with_watcher:
            async def reqs() -> AsyncIterator[rpc.WatchRequest]:
                yield _create(b"s/")
                await stop.wait()
            call = rpc.WatchStub(wch).Watch(reqs())
            created = await asyncio.wait_for(call.read(), 30)  # then never read again
            assert created.created, created
        kv = rpc.KVStub(ch)
        value = b"x" * 16384
        n = megabytes * 1024 // 16
        t0 = time.monotonic()
        next_sample = 0.0
        for i in range(n):
            await kv.Put(rpc.PutRequest(key=b"s/%d" % (i % 1000), value=value), timeout=10)
            if (t := time.monotonic() - t0) >= next_sample:
                samples.append((t, rss_mb(pid)))
                next_sample += every
        samples.append((time.monotonic() - t0, rss_mb(pid)))
        await kv.Range(rpc.RangeRequest(key=b"s/0"), timeout=10)  # it still serves
        state = "n/a"
        if call is not None:
            state = "open" if not call.done() else f"ended: {await call.code()}"
        return samples, f"{state}; {await asyncio.to_thread(gauges, metrics_url)}"
    finally:
        stop.set()
        if call is not None:
            call.cancel()
        await ch.close()
        await wch.close()


async def run(a: argparse.Namespace, workdir: Path) -> list[str]:
    fan: dict[str, Fanout] = {}
    mem: dict[str, dict[bool, tuple[list[tuple[float, float]], str]]] = {}
    for server in SERVERS:
        for with_watcher in (None, True, False):  # None: the fan-out run
            c = cluster(server, workdir / f"{server.split()[0]}-{with_watcher}", a.size)
            try:
                c.start()
                m = c.members[0]
                assert m.proc is not None
                if with_watcher is None:
                    fan[server] = await fanout(m.client_url, a.watchers, a.writers, a.writes)
                    print(server, fan[server], flush=True)
                else:
                    mem.setdefault(server, {})[with_watcher] = await slow(
                        m.client_url, m.metrics_url, m.proc.pid, a.slow_mb, with_watcher,
                        a.every)
                    print(server, "slow" if with_watcher else "control",
                          mem[server][with_watcher], flush=True)
            finally:
                c.stop()
    return report(a, fan, mem)


def report(a: argparse.Namespace, fan: dict[str, Fanout],
           mem: dict[str, dict[bool, tuple[list[tuple[float, float]], str]]]) -> list[str]:
    r, e = fan["raftkv"], fan["etcd 3.6.16"]
    out = [f"## Fan-out: {a.watchers} watchers on one member of {a.size}, {a.writers} writers, "
           f"{a.writes} Puts of 100 B", "",
           "| server | writes/s | events/s delivered | lag after last write | delivered |",
           "|---|---:|---:|---:|---:|"]
    for name, f in fan.items():
        out.append(f"| {name} | {f.writes_per_s:.0f} | {f.events_per_s:.0f} | "
                   f"{f.lag_s:.2f} s | {f.delivered}/{f.expected} |")
    out += ["", f"raftkv / etcd events/s: **{r.events_per_s / e.events_per_s:.2f}**; "
            f"writes/s: {r.writes_per_s / e.writes_per_s:.2f}", "",
            f"## Slow watcher: one never-read Watch stream, {a.slow_mb} MB of 16 KiB Puts "
            f"(1000 keys)", "",
            "| server | run | RSS start MB | RSS peak MB | RSS end MB | growth MB | stream; "
            "gauges at the end |",
            "|---|---|---:|---:|---:|---:|---|"]
    for name, runs in mem.items():
        for w in (True, False):
            samples, state = runs[w]
            rss = [s for _, s in samples]
            out.append(f"| {name} | {'slow watcher' if w else 'control'} | {rss[0]:.1f} | "
                       f"{max(rss):.1f} | {rss[-1]:.1f} | {rss[-1] - rss[0]:+.1f} | {state} |")
    out += ["", "Slow-watcher RSS over time (s: MB):", ""]
    for name, runs in mem.items():
        pts = ", ".join(f"{t:.0f}: {s:.0f}" for t, s in runs[True][0])
        out.append(f"- {name}: {pts}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=3)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--slow-mb", type=int, default=64)
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as d:
        lines = asyncio.run(run(a, Path(d)))
    print("\n".join(lines))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        cmd = (f".venv/bin/python -m bench.watch --size {a.size} --watchers {a.watchers} "
               f"--writers {a.writers} --writes {a.writes} --slow-mb {a.slow_mb} --out {a.out}")
        a.out.write_text("\n".join(["# Watch benchmark (issue 12)", "", f"`{cmd}`", "",
                                    *lines]) + "\n")


if __name__ == "__main__":
    main()
