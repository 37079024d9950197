"""`make demo`: a real three-member raftkv cluster on loopback loses its leader and keeps
every acknowledged write.

It starts three ``raftkv`` processes (temporary data dirs, free loopback ports), writes
keys through the etcd gRPC API, keeps a writer running, SIGKILLs the leader, reports the
new leader, the higher term and the write gap, restarts the killed member and waits until
it has caught up, then reads every acknowledged write back from every member. A table
and plain words say what happened; the exit status is 0 only if everything held. Every
process it starts is stopped by pid, also on failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.ports import free_port

PREFIX = b"/demo/"


@dataclass
class Member:
    name: str
    client: int = field(default_factory=free_port)
    peer: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client}"


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.members = [Member(f"m{i}") for i in range(3)]
        self.cluster = ",".join(f"{m.name}=http://127.0.0.1:{m.peer}" for m in self.members)
        self.channels: dict[str, grpc.aio.Channel] = {}

    def start(self, m: Member, state: str = "new") -> None:
        log = open(self.dir / f"{m.name}.log", "ab")  # noqa: SIM115 - the child owns it
        m.proc = subprocess.Popen(
            [sys.executable, "-m", "raftkv.cli", f"--name={m.name}",
             f"--data-dir={self.dir / m.name}",
             f"--listen-client-urls=http://127.0.0.1:{m.client}",
             f"--advertise-client-urls=http://127.0.0.1:{m.client}",
             f"--listen-peer-urls=http://127.0.0.1:{m.peer}",
             f"--initial-advertise-peer-urls=http://127.0.0.1:{m.peer}",
             f"--listen-metrics-urls=http://127.0.0.1:{m.metrics}",
             f"--initial-cluster={self.cluster}", f"--initial-cluster-state={state}",
             "--heartbeat-interval=100", "--election-timeout=1000"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def stop_all(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.terminate()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()

    def healthy(self, m: Member) -> bool:
        try:
            url = f"http://127.0.0.1:{m.metrics}/health"
            with urllib.request.urlopen(url, timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    async def wait(self, what: str, cond: object, timeout: float = 30) -> float:
        """Wait for ``cond()`` (polled every 20 ms); returns the seconds it took."""
        t0 = time.monotonic()
        while not await _call(cond):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.02)
        return time.monotonic() - t0

    def kv(self, m: Member) -> rpc_pb2_grpc.KVStub:
        ch = self.channels.setdefault(m.endpoint, grpc.aio.insecure_channel(m.endpoint))
        return rpc_pb2_grpc.KVStub(ch)

    async def status(self, m: Member) -> rpc_pb2.StatusResponse | None:
        ch = self.channels.setdefault(m.endpoint, grpc.aio.insecure_channel(m.endpoint))
        try:
            return await rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(),
                                                                  timeout=1)
        except grpc.aio.AioRpcError:
            return None

    async def leader(self, among: list[Member]) -> tuple[Member, int] | None:
        ids: dict[int, Member] = {}
        leads: set[tuple[int, int]] = set()
        for m in among:
            st = await self.status(m)
            if st is None or st.leader == 0:
                return None
            ids[st.header.member_id] = m
            leads.add((st.leader, st.raftTerm))
        if len(leads) != 1:
            return None
        lead, term = leads.pop()
        return (ids[lead], term) if lead in ids else None

    async def put(self, m: Member, key: bytes, value: bytes) -> bool:
        try:
            await self.kv(m).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=2)
            return True
        except grpc.aio.AioRpcError:
            return False

    async def read_all(self, m: Member) -> dict[bytes, bytes]:
        end = PREFIX[:-1] + bytes([PREFIX[-1] + 1])
        resp = await self.kv(m).Range(
            rpc_pb2.RangeRequest(key=PREFIX, range_end=end, serializable=True), timeout=5)
        return {kv.key: kv.value for kv in resp.kvs}


async def _call(cond: object) -> bool:
    r = cond()  # type: ignore[operator]
    if asyncio.iscoroutine(r):
        r = await r
    return bool(r)


async def run(d: Demo) -> int:
    rows: list[tuple[str, str]] = []
    say = print
    for m in d.members:
        d.start(m)
    took = await d.wait("three healthy members", lambda: all(d.healthy(m) for m in d.members))
    found = await d.leader(d.members)
    assert found is not None
    lead, term = found
    say(f"Three raftkv members started on loopback; after {took * 1000:.0f} ms member "
        f"{lead.name} leads term {term}.")
    rows.append(("leader elected", f"{lead.name} (term {term})"))

    acked: dict[bytes, bytes] = {}
    for i in range(50):
        k, v = PREFIX + b"before-%03d" % i, b"v%d" % i
        if await d.put(d.members[i % 3], k, v):
            acked[k] = v
    say(f"{len(acked)} writes acknowledged through all three members' client ports.")
    rows.append(("writes before the crash", f"{len(acked)} acknowledged"))

    survivors = [m for m in d.members if m is not lead]
    ok_times: list[float] = []
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            k, v = PREFIX + b"during-%04d" % i, b"w%d" % i
            if await d.put(survivors[i % 2], k, v):
                acked[k] = v
                ok_times.append(time.monotonic())
            i += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    await d.wait("the writer to get going", lambda: len(ok_times) >= 20)
    assert lead.proc is not None
    killed_at = time.monotonic()
    os.kill(lead.proc.pid, signal.SIGKILL)
    lead.proc.wait()
    say(f"Member {lead.name}, the leader, is killed with SIGKILL while a client keeps writing.")
    rows.append(("leader SIGKILLed", lead.name))

    async def new_leader() -> bool:
        f = await d.leader(survivors)
        return f is not None and f[0] is not lead

    elected = await d.wait("a new leader", new_leader)
    found = await d.leader(survivors)
    assert found is not None
    new, term2 = found
    await d.wait("writes to resume", lambda: any(t > killed_at + elected for t in ok_times))
    before = max((t for t in ok_times if t < killed_at), default=killed_at)
    after = min(t for t in ok_times if t > killed_at)
    gap = after - before
    say(f"{elected * 1000:.0f} ms later member {new.name} leads term {term2} (was {term}); "
        f"no write was acknowledged for {gap * 1000:.0f} ms.")
    rows.append(("new leader", f"{new.name}, term {term2} (was {term}), after "
                               f"{elected * 1000:.0f} ms"))
    rows.append(("write gap", f"{gap * 1000:.0f} ms"))

    d.start(lead, state="existing")
    restarted = time.monotonic()

    async def caught_up() -> bool:
        st, ref = await d.status(lead), await d.status(new)
        return st is not None and ref is not None and st.leader != 0 and (
            st.raftAppliedIndex >= ref.raftIndex - 5)

    await d.wait(f"{lead.name} to catch up", caught_up)
    stop.set()
    await task
    say(f"Member {lead.name} restarts from its data dir and catches up in "
        f"{(time.monotonic() - restarted) * 1000:.0f} ms.")
    rows.append(("member restarted", f"{lead.name} caught up in "
                                     f"{(time.monotonic() - restarted) * 1000:.0f} ms"))

    async def all_have_everything() -> bool:
        for m in d.members:
            got = await d.read_all(m)
            if any(got.get(k) != v for k, v in acked.items()):
                return False
        return True

    with contextlib.suppress(RuntimeError):
        await d.wait("every member to hold every acknowledged write", all_have_everything, 20)
    missing = 0
    for m in d.members:
        got = await d.read_all(m)
        missing += sum(1 for k, v in acked.items() if got.get(k) != v)
    say(f"Every one of the {len(acked)} acknowledged writes reads back from every member."
        if not missing else f"{missing} acknowledged writes are missing or wrong!")
    rows.append(("acknowledged writes",
                 f"{len(acked) * 3 - missing}/{len(acked) * 3} reads back on 3 members"))

    checks = {
        "a leader was elected": term > 0,
        "a different member took over": new is not lead,
        "in a higher term": term2 > term,
        "writes resumed after the crash": after > killed_at,
        "no acknowledged write was lost": missing == 0,
    }
    width = max(len(a) for a, _ in rows)
    say("")
    for a, b in rows:
        say(f"  {a:<{width}}  {b}")
    say("")
    for what, ok in checks.items():
        say(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if all(checks.values()):
        say("\nEverything held.")
        return 0
    return 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="raftkv-demo-") as tmp:
        d = Demo(Path(tmp))
        try:
            return asyncio.run(run(d))
        except (RuntimeError, AssertionError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            for m in d.members:
                log = d.dir / f"{m.name}.log"
                if log.exists():
                    print(f"--- {m.name} ---\n{log.read_text()[-2000:]}", file=sys.stderr)
            return 1
        finally:
            with contextlib.suppress(Exception):
                d.stop_all()


if __name__ == "__main__":
    sys.exit(main())
