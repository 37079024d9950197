"""The write gap after a leader SIGKILL: raftkv next to etcd 3.6.16 in one run (issue 14).

For each server a 3-member cluster on loopback (tests.support.etcd, same flags for both:
fsync on, heartbeat 50 ms, election 500 ms) is started once. For each client and each of
``--runs`` trials: a writer puts sequentially (one request in flight, a fresh key each
time, a per-request deadline of ``--deadline`` seconds, and on any failure the next member
of all three is tried); the leader is SIGKILLed; from the kill we record

- ``elected``: until a survivor's Status says it leads a higher term (polled every 10 ms);
- ``first ack``: until the first acknowledgement of a write *sent after the kill* (a write
  sent before may still hang on a dead path: that is exactly the gap being measured);
- ``gap``: their difference, the time beyond the election.

Then the killed member is restarted from its data dir and the next trial waits until every
member is healthy again. The clients:

- ``grpc``: the client ``make demo`` uses (raftkv/demo.py): ``grpc.aio`` KV.Put through
  aetcd's generated stubs, one channel per member, a deadline per request;
- ``etcdctl``: etcdctl 3.6.16 ``put``, one process per attempt, all endpoints,
  ``--command-timeout`` and ``--dial-timeout`` set to the deadline, retried in a loop.

Only timestamps of this process (time.monotonic) are compared; nothing here asserts on
time. Run (never in ``make test``)::

    .venv/bin/python -m bench.failover_gap --out bench/results/failover-gap.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.support.etcd import Cluster, Member, etcd36_bin, raftkv_cluster

SERVERS = ("raftkv", "etcd 3.6.16")
CLIENTS = ("grpc", "etcdctl")


@dataclass
class Trial:
    elected: float  # seconds from the kill to a new leader
    first_ack: float  # seconds from the kill to the first ack of a write sent after it
    timeline: list[str] = field(default_factory=list)  # the attempts around the kill

    @property
    def gap(self) -> float:
        return self.first_ack - self.elected


@dataclass
class Writer:
    """Sequential puts with retry to the next member; records (sent, acked) pairs."""

    endpoints: list[str]
    deadline: float
    client: str
    acks: list[tuple[float, float]] = field(default_factory=list)
    attempts: list[tuple[float, float, str, str]] = field(default_factory=list)
    failures: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    async def put_grpc(self, ep: str, key: bytes) -> str:
        ch = self._channels.setdefault(ep, grpc.aio.insecure_channel(ep))
        try:
            await rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=b"v"),
                                              timeout=self.deadline)
            return "OK"
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"

    async def put_etcdctl(self, key: bytes) -> str:
        eps = ",".join(f"http://{e}" for e in self.endpoints)
        d = f"{int(self.deadline * 1000)}ms"
        proc = await asyncio.create_subprocess_exec(
            str(etcd36_bin("etcdctl")), f"--endpoints={eps}", f"--command-timeout={d}",
            f"--dial-timeout={d}", "put", key.decode(), "v",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "ETCDCTL_API": "3"})
        return "OK" if await proc.wait() == 0 else "etcdctl failed"

    async def run(self) -> None:
        i, member = 0, 0
        while not self.stop.is_set():
            key = b"/gap/%08d" % i
            sent = time.monotonic()
            ep = self.endpoints[member] if self.client == "grpc" else "all"
            if self.client == "grpc":
                outcome = await self.put_grpc(ep, key)
            else:
                outcome = await self.put_etcdctl(key)
            self.attempts.append((sent, time.monotonic(), ep, outcome))
            if outcome == "OK":
                self.acks.append((sent, time.monotonic()))
            else:
                self.failures += 1
                member = (member + 1) % len(self.endpoints)
            i += 1
            await asyncio.sleep(0.005)  # as the demo's writer: do not spin the two cores

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()


async def status(ch: grpc.aio.Channel) -> rpc_pb2.StatusResponse | None:
    try:
        return await rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(),
                                                              timeout=0.2)
    except grpc.aio.AioRpcError:
        return None


def endpoint(m: Member) -> str:
    return f"127.0.0.1:{m.client_port}"


async def wait_for(what: str, cond: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Poll ``cond`` every 10 ms; return the monotonic time it first held."""
    end = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def find_leader(c: Cluster) -> tuple[Member, int, int]:
    """(member, its id, term) once every member agrees on one leader."""
    chans = {m.name: grpc.aio.insecure_channel(endpoint(m)) for m in c.members}
    try:
        found: list[tuple[Member, int, int]] = []

        async def agreed() -> bool:
            sts = [await status(chans[m.name]) for m in c.members]
            if any(s is None or s.leader == 0 for s in sts):
                return False
            if len({(s.leader, s.raftTerm) for s in sts if s is not None}) != 1:
                return False
            for m, s in zip(c.members, sts, strict=True):
                if s is not None and s.header.member_id == s.leader:
                    found[:] = [(m, s.leader, s.raftTerm)]
            return bool(found)

        await wait_for("one leader", agreed, 30)
        return found[0]
    finally:
        for ch in chans.values():
            await ch.close()


async def trial(c: Cluster, client: str, deadline: float) -> Trial:
    lead, lead_id, term = await find_leader(c)
    survivors = [m for m in c.members if m is not lead]
    chans = [grpc.aio.insecure_channel(endpoint(m)) for m in survivors]
    w = Writer([endpoint(m) for m in c.members], deadline, client)
    task = asyncio.create_task(w.run())
    try:
        await wait_for("the writer to get going", lambda: _true(len(w.acks) >= 10), 30)
        assert lead.proc is not None
        killed = time.monotonic()
        lead.proc.kill()

        async def new_leader() -> bool:
            for ch in chans:
                s = await status(ch)
                if s is not None and s.leader == s.header.member_id and s.raftTerm > term:
                    return True
            return False

        elected = await wait_for("a new leader", new_leader, 30)
        acked = await wait_for("a write sent after the kill to be acknowledged",
                               lambda: _true(any(s > killed for s, _ in w.acks)), 60)
        first = min(a for s, a in w.acks if s > killed)
        del acked
        names = {endpoint(m): m.name + (" (killed leader)" if m is lead else "")
                 for m in c.members}
        timeline = [f"sent {(s - killed) * 1000:+6.0f} ms, ended {(e - killed) * 1000:+6.0f} "
                    f"ms, {names.get(ep, ep)}: {out}"
                    for s, e, ep, out in w.attempts if e > killed and s <= first]
        timeline.append(f"new leader seen at {(elected - killed) * 1000:+.0f} ms")
        return Trial(elected - killed, first - killed, timeline)
    finally:
        w.stop.set()
        await task
        await w.close()
        for ch in chans:
            await ch.close()
        c.restart(lead)
        c.wait_healthy(60)
        _ = lead_id


async def _true(v: bool) -> bool:
    return v


def start(server: str, workdir: Path) -> Cluster:
    if server == "raftkv":
        return raftkv_cluster(workdir, 3).start()
    return Cluster(workdir, 3, binary=etcd36_bin()).start()


def measure(server: str, client: str, runs: int, deadline: float, workdir: Path,
            timeline: bool = False) -> list[Trial]:
    c = start(server, workdir)
    try:
        out: list[Trial] = []
        for i in range(runs):
            t = asyncio.run(trial(c, client, deadline))
            print(f"{server:12} {client:8} run {i + 1}: elected {t.elected * 1000:.0f} ms, "
                  f"first ack {t.first_ack * 1000:.0f} ms, gap {t.gap * 1000:.0f} ms",
                  flush=True)
            if timeline:
                print("\n".join(f"    {line}" for line in t.timeline), flush=True)
            out.append(t)
        return out
    except BaseException:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        c.stop()


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f} / {max(xs) * 1000:.0f}"


def table(results: dict[tuple[str, str], list[Trial]]) -> str:
    lines = ["| server | client | runs | elected ms (median / max) | first ack ms "
             "(median / max) | gap beyond election ms (median / max) |",
             "|---|---|---|---|---|---|"]
    for (server, client), ts in results.items():
        lines.append(f"| {server} | {client} | {len(ts)} | {ms([t.elected for t in ts])} | "
                     f"{ms([t.first_ack for t in ts])} | {ms([t.gap for t in ts])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="kills per server and client")
    p.add_argument("--deadline", type=float, default=0.5, help="seconds per request")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--out", type=Path)
    p.add_argument("--timeline", action="store_true",
                   help="print every attempt from the kill to the first ack (the evidence)")
    a = p.parse_args(argv)
    servers = [s for s in a.servers.split(",") if s]
    clients = [s for s in a.clients.split(",") if s]
    bad = [s for s in servers if s not in SERVERS] + [c for c in clients if c not in CLIENTS]
    if bad or a.runs < 1 or a.deadline <= 0:
        print(f"failover_gap: unknown server or client {bad}, or runs < 1 or deadline <= 0 "
              f"(servers: {', '.join(SERVERS)}; clients: {', '.join(CLIENTS)})",
              file=sys.stderr)
        return 2
    try:
        etcd36_bin("etcdctl")
    except FileNotFoundError as exc:
        print(f"failover_gap: {exc}", file=sys.stderr)
        return 3
    results: dict[tuple[str, str], list[Trial]] = {}
    with tempfile.TemporaryDirectory(prefix="failover-gap-") as tmp:
        for server in servers:
            for client in clients:
                wd = Path(tmp) / f"{server.split()[0]}-{client}"
                results[(server, client)] = measure(server, client, a.runs, a.deadline, wd,
                                                   a.timeline)
    text = "\n".join([
        f"Command: `.venv/bin/python -m bench.failover_gap {' '.join(argv or sys.argv[1:])}`",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"load average {os.getloadavg()[0]:.2f} at the end",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"Per-request deadline {a.deadline:.2f} s; heartbeat 50 ms, election 500 ms.",
        "", table(results), ""])
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
