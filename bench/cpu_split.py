"""Where a write's CPU goes, raftkv next to etcd 3.6.16 in one run, and the throughput the
machine's cores allow at that cost (issue 14: can more processes pass the ceiling here?).

For each server a fresh 3-member cluster (``bench.compare.start``) takes etcd's
``benchmark put`` at each ``--clients`` count (one client via the leader; more over all
members, as ``bench.compare`` does). Around each run the utime + stime of every thread
of every member is read from /proc, and the load generator's own from its rusage. The
table gives, per write: the leader's CPU (and, for raftkv, its event loop thread's), the
followers', the load generator's and the sum; then ``cores / sum``, the writes/s these
cores could give if every cycle went to this work in any arrangement of processes, and
how much of that the run reached. Last, the same loads at the null KV servicer of
``bench.grpc_servicer`` (grpc.aio with generic handlers, raftkv's shape; no consensus, no
disk), one process: what gRPC alone costs per request here, which raftkv pays once per
write in the member the client talks to, so the rest of raftkv's CPU is its own work.
Run (never in ``make test``)::

    .venv/bin/python -m bench.cpu_split --out bench/results/cpu-split.md
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.compare import (
    BENCHMARK_VERSION,
    CLK_TCK,
    SERVERS,
    benchmark_bin,
    emit,
    leader_and_follower,
    parse_benchmark,
    report_head,
    start,
)
from bench.grpc_servicer import running
from tests.support.etcd import Cluster


@dataclass
class Split:
    server: str
    clients: int
    writes: int
    per_s: float
    p50_ms: float
    leader_s: float  # CPU seconds over the run
    leader_loop_s: float | None  # raftkv: the event loop's thread (the main thread)
    followers_s: float
    load_s: float

    def ms(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.writes * 1000

    @property
    def total_ms(self) -> float:
        return (self.leader_s + self.followers_s + self.load_s) / self.writes * 1000


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) of each live thread of ``pid``."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _delta(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    return {t: v - before.get(t, 0.0) for t, v in after.items()}


NULL = "null grpc.aio servicer"


def run_load(ports: list[int], args: list[str]) -> tuple[str, float]:
    """The benchmark's output and its own CPU seconds (the rusage of the children reaped
    meanwhile: only it, as the members are reaped when the cluster stops)."""
    eps = ",".join(f"127.0.0.1:{p}" for p in ports)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([str(benchmark_bin()), f"--endpoints={eps}", *args],
                       capture_output=True, text=True, timeout=1800, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark {' '.join(args)} failed: {r.stderr[-2000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r.stdout, used


def split(c: Cluster, server: str, clients: int, total: int) -> Split:
    leader, _ = leader_and_follower(c)
    pids = {m.name: m.proc.pid for m in c.members if m.proc is not None}
    endpoints = [leader] if clients == 1 else c.members
    return measure(server, pids, leader.name, [m.client_port for m in endpoints], clients,
                   total)


def measure(server: str, pids: dict[str, int], leader: str, ports: list[int], clients: int,
            total: int) -> Split:
    """One benchmark run at ``ports`` and the CPU every thread of ``pids`` used meanwhile;
    ``leader`` names the process counted as the leader, the others as followers."""
    before = {n: thread_cpu(p) for n, p in pids.items()}
    out, load_s = run_load(ports, [f"--clients={clients}", f"--conns={min(clients, 16)}",
                                   "put", f"--total={total}", "--key-size=8",
                                   "--val-size=256"])
    used = {n: _delta(before[n], thread_cpu(p)) for n, p in pids.items()}
    rps, p50, _ = parse_benchmark(out)
    lead = used.pop(leader)
    return Split(server, clients, total, rps, p50, sum(lead.values()),
                 lead.get(pids[leader]) if server == "raftkv" else None,
                 sum(sum(u.values()) for u in used.values()), load_s)


def fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def table(rows: list[Split], cores: int) -> str:
    """One line per server and client count: CPU ms per write and the cores' ceiling."""
    lines = [f"| server | clients | writes/s | p50 ms | leader ms/write (event loop) "
             f"| followers ms/write | load generator ms/write | total ms/write "
             f"| {cores}-core ceiling writes/s | reached |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        loop = f" ({fmt(r.ms(r.leader_loop_s))})" if r.leader_loop_s is not None else ""
        ceiling = cores * 1000 / r.total_ms
        lines.append(f"| {r.server} | {r.clients} | {r.per_s:.0f} | {r.p50_ms:.1f} "
                     f"| {fmt(r.ms(r.leader_s))}{loop} | {fmt(r.ms(r.followers_s))} "
                     f"| {fmt(r.ms(r.load_s))} | {r.total_ms:.2f} | {ceiling:.0f} "
                     f"| {r.per_s / ceiling:.0%} |")
    return "\n".join(lines)


def needed(rows: list[Split], cores: int, share: float = 0.8) -> str:
    """What ``share`` of etcd's rate at the most clients would take of raftkv's CPU."""
    most = max(r.clients for r in rows)
    by = {r.server: r for r in rows if r.clients == most}
    rk, et = (by.get(s) for s in SERVERS)
    if rk is None or et is None:
        return ""
    target = share * et.per_s
    budget = cores * 1000 / target
    return (f"At {most} clients, {share:.1f}x etcd's {et.per_s:.0f} writes/s is "
            f"{target:.0f} writes/s: at most {budget:.2f} ms of CPU per write on {cores} "
            f"cores, load generator included; raftkv used {rk.total_ms:.2f} ms "
            f"({rk.total_ms / budget:.1f}x that budget), etcd {et.total_ms:.2f} ms.")


def beyond_grpc(rows: list[Split]) -> list[str]:
    """Per client count: raftkv's members' CPU per write, less what gRPC alone costs per
    request (the null servicer's process), next to etcd's members'."""
    by = {(r.server, r.clients): r for r in rows}
    lines = []
    for n in sorted({r.clients for r in rows}):
        rk, et, null = by.get(("raftkv", n)), by.get((SERVERS[1], n)), by.get((NULL, n))
        if rk is None or null is None:
            continue
        members = (rk.leader_s + rk.followers_s) / rk.writes * 1000
        grpc = null.leader_s / null.writes * 1000
        etcd = "" if et is None else (
            f"; etcd's three members spend {(et.leader_s + et.followers_s) / et.writes * 1000:.2f}"
            " ms per write in all")
        lines.append(f"- {n} clients: raftkv's members spend {members:.2f} ms per write; "
                     f"gRPC alone (the null servicer) {grpc:.2f} ms per request, so "
                     f"{members - grpc:.2f} ms is raftkv's own work{etcd}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 16, 256])
    p.add_argument("--total", type=int, default=10_000, help="writes per run (1 client: /5)")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    cores = os.cpu_count() or 1
    rows: list[Split] = []
    with tempfile.TemporaryDirectory(prefix="cpu-split-") as tmp:
        for server in SERVERS:
            c = start(server, Path(tmp) / server.split()[0])
            try:
                rows += [split(c, server, n, a.total // 5 if n == 1 else a.total)
                         for n in a.clients]
            finally:
                c.stop()
    with running("aio-generic") as (port, pid):
        rows += [measure(NULL, {NULL: pid}, NULL, [port], n,
                         a.total // 5 if n == 1 else a.total) for n in a.clients]
    text = "\n".join([
        *report_head("CPU per write, raftkv next to etcd 3.6.16 (bench/cpu_split.py)",
                     "bench.cpu_split", argv,
                     f"3 members on loopback, fsync on; etcd's benchmark {BENCHMARK_VERSION} "
                     "put, 256-byte values; CPU is utime + stime of every thread."),
        table(rows, cores), "", needed(rows, cores), "", *beyond_grpc(rows), ""])
    emit(text, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
