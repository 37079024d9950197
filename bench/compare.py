"""raftkv next to etcd 3.6.16, side by side in one run (issue 14's yardstick).

For each server a fresh 3-member cluster on loopback (same flags: fsync on, heartbeat
50 ms, election 500 ms) gets, in this order:

1. ``etcdctl check perf --load=<l>`` for each load asked (etcdctl 3.6.16): writes/s and
   the slowest request, as etcd's own acceptance check reports them;
2. etcd's ``benchmark`` tool (go.etcd.io/etcd/v3 v3.6.8 tools/benchmark, built by
   scripts/build-etcd-benchmark.sh): put at each ``--clients`` count over all members,
   one client put via the leader and via a follower, range linearizable and serializable,
   watch latency; p50/p99 from its latency distribution, requests/s from its summary;
   CPU-seconds of all members together per 1,000 writes (utime + stime from /proc around
   each put run);
3. the RSS of each member after ``--keys`` distinct keys were written.

Both servers see the same client processes on the same 2-core machine, so the ratios are
the point, not the absolute figures. The table, the command, the machine and the date are
written to ``--out``. Run (never in ``make test``)::

    .venv/bin/python -m bench.compare --out bench/results/compare.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.etcd import Cluster, Member, etcd36_bin, raftkv_cluster

SERVERS = ("raftkv", "etcd 3.6.16")
BENCHMARK_VERSION = "v3.6.8"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def benchmark_bin() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(os.environ.get("RAFTKV_BENCHMARK_CACHE")
                or cache / "raftkv" / "etcd-benchmark" / BENCHMARK_VERSION) / "benchmark"
    if not path.exists():
        subprocess.run(["bash", str(Path(__file__).parents[1] / "scripts" /
                                    "build-etcd-benchmark.sh")], check=True)
    return path


@dataclass
class Row:
    server: str
    test: str
    per_s: float | None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_per_1k: float | None = None
    note: str = ""


def start(server: str, workdir: Path) -> Cluster:
    if server == "raftkv":
        return raftkv_cluster(workdir, 3).start()
    return Cluster(workdir, 3, binary=etcd36_bin()).start()


def cpu_seconds(c: Cluster) -> float:
    total = 0
    for m in c.members:
        assert m.proc is not None
        fields = Path(f"/proc/{m.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def rss_mb(m: Member) -> float:
    assert m.proc is not None
    for line in Path(f"/proc/{m.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {m.name}")


def leader_and_follower(c: Cluster) -> tuple[Member, Member]:
    out = c.etcdctl("endpoint", "status", "-w", "json", version="3.6").stdout
    leader_id = {s["Status"]["leader"] for s in json.loads(out)}
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in json.loads(out)}
    by_url = {m.client_url: m for m in c.members}
    leader = next(by_url[u] for u, i in ids.items() if i in leader_id)
    follower = next(m for m in c.members if m is not leader)
    return leader, follower


def check_perf(c: Cluster, server: str, load: str) -> Row:
    r = c.etcdctl("check", "perf", f"--load={load}", version="3.6", check=False, timeout=300)
    rate, note = read_check_perf(r.stdout + r.stderr, r.returncode)
    return Row(server, f"check perf --load={load}", rate, note=note)


def read_check_perf(text: str, returncode: int) -> tuple[float | None, str]:
    """writes/s (None: not reported) and the verdicts of ``etcdctl check perf``'s output,
    which says "PASS: Throughput is N writes/s" or "FAIL: Throughput too low: N writes/s"."""
    got = re.search(r"Throughput (?:is|too low:) (\d+) writes/s", text)
    slow = re.search(r"Slowest request took ([\d.]+)s", text)
    verdicts = [ln.strip() for ln in re.split(r"[\r\n]", text)
                if ln.strip().startswith("FAIL")]
    note = "; ".join(verdicts) or ("PASS" if returncode == 0 else f"exit {returncode}")
    if slow:
        note += f"; slowest {float(slow.group(1)) * 1000:.0f} ms"
    return (float(got.group(1)) if got else None), note


def run_benchmark(endpoints: list[Member], args: list[str],
                  section: str = "") -> tuple[float, float, float]:
    """requests/s, p50 ms and p99 ms of one benchmark run (of its summary after ``section``)."""
    eps = ",".join(f"127.0.0.1:{m.client_port}" for m in endpoints)
    r = subprocess.run([str(benchmark_bin()), f"--endpoints={eps}", *args],
                       capture_output=True, text=True, timeout=1800, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark {' '.join(args)} failed: {r.stderr[-2000:]}")
    return parse_benchmark(r.stdout.split(section, 1)[-1] if section else r.stdout)


def parse_benchmark(out: str) -> tuple[float, float, float]:
    """The first summary's requests/s and its 50% and 99% latencies in ms."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\b50% in ([\d.]+) secs", out)
    p99 = re.search(r"\b99% in ([\d.]+) secs", out)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot read benchmark output:\n{out[-2000:]}")
    return float(rps.group(1)), float(p50.group(1)) * 1000, float(p99.group(1)) * 1000


def puts(c: Cluster, server: str, label: str, endpoints: list[Member], clients: int,
         total: int, extra: list[str] | None = None) -> Row:
    before = cpu_seconds(c)
    conns = max(1, min(clients, 16))
    rps, p50, p99 = run_benchmark(endpoints, [
        f"--clients={clients}", f"--conns={conns}", "put", f"--total={total}",
        "--key-size=8", "--val-size=256", *(extra or [])])
    cpu = (cpu_seconds(c) - before) / total * 1000
    return Row(server, label, rps, p50, p99, cpu)


def ranges(c: Cluster, server: str, consistency: str, clients: int, total: int,
           endpoints: list[Member] | None = None, via: str = "") -> Row:
    rps, p50, p99 = run_benchmark(endpoints or c.members, [
        f"--clients={clients}", f"--conns={min(clients, 16)}", "range", "bench-key",
        f"--consistency={consistency}", f"--total={total}"])
    kind = "linearizable" if consistency == "l" else "serializable"
    who = f"{clients} client{'s' if clients > 1 else ''}" + (f" via {via}" if via else "")
    return Row(server, f"range {kind}, {who}", rps, p50, p99)


def watch_latency(c: Cluster, server: str, total: int) -> Row:
    rps, p50, p99 = run_benchmark(c.members[:1], [
        "watch-latency", f"--put-total={total}", "--put-rate=200", "--streams=10",
        "--watchers-per-stream=10"], section="Watch events summary")
    return Row(server, "watch events, 100 watchers, 200 puts/s", rps, p50, p99,
               note="latency from put to delivery")


def rss_after(c: Cluster, server: str, keys: int) -> Row:
    run_benchmark(c.members, ["--clients=16", "--conns=16", "put", f"--total={keys}",
                                 f"--key-space-size={keys}", "--sequential-keys",
                                 "--key-size=16", "--val-size=256"])
    mbs = [rss_mb(m) for m in c.members]
    return Row(server, f"RSS after {keys} keys", None,
               note="MB per member: " + ", ".join(f"{x:.0f}" for x in mbs))


def measure(server: str, workdir: Path, a: argparse.Namespace) -> list[Row]:
    c = start(server, workdir)
    try:
        rows = [check_perf(c, server, load) for load in a.loads]
        for n in a.clients:
            rows.append(puts(c, server, f"put, {n} clients", c.members, n, a.total))
        leader, follower = leader_and_follower(c)
        single = max(a.total // 20, 200)
        rows.append(puts(c, server, "put, 1 client via leader", [leader], 1, single))
        rows.append(puts(c, server, "put, 1 client via follower", [follower], 1, single))
        for cons in ("l", "s"):
            rows.append(ranges(c, server, cons, 16, a.total))
        rows.append(ranges(c, server, "l", 1, single, [leader], "leader"))
        rows.append(ranges(c, server, "l", 1, single, [follower], "follower"))
        rows.append(watch_latency(c, server, a.watch_puts))
        rows.append(rss_after(c, server, a.keys))
        return rows
    except BaseException:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        c.stop()


def fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else ""


def table(rows: list[Row]) -> str:
    """One line per test, raftkv and etcd side by side, with raftkv/etcd ratios."""
    by = {(r.server, r.test): r for r in rows}
    tests = list(dict.fromkeys(r.test for r in rows))
    rk, et = SERVERS
    lines = [
        "| test | raftkv /s | etcd /s | ratio | raftkv p50 / p99 ms | etcd p50 / p99 ms "
        "| p99 ratio | raftkv CPU-s/1k | etcd CPU-s/1k | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in tests:
        a, b = by.get((rk, t)), by.get((et, t))
        if a is None or b is None:
            continue
        notes = "; ".join(f"{s}: {r.note}" for s, r in ((rk, a), (et, b)) if r.note)
        lines.append(
            f"| {t} | {fmt(a.per_s, 0)} | {fmt(b.per_s, 0)} | {ratio(a.per_s, b.per_s)} "
            f"| {fmt(a.p50_ms)} / {fmt(a.p99_ms)} | {fmt(b.p50_ms)} / {fmt(b.p99_ms)} "
            f"| {ratio(a.p99_ms, b.p99_ms)} | {fmt(a.cpu_per_1k)} | {fmt(b.cpu_per_1k)} "
            f"| {notes} |")
    return "\n".join(lines)


# (test, what is compared, bound, True: raftkv/etcd must be at least the bound, else at most)
FLOORS = [
    ("check perf --load=l", "writes/s", 0.8, True),
    ("put, 1 client via leader", "p50", 1.5, False),
    ("put, 1 client via follower", "p50", 1.5, False),
    ("range linearizable, 1 client via leader", "p50", 2.0, False),
    ("range linearizable, 1 client via follower", "p50", 2.0, False),
    ("put, 1 client via leader", "p99", 2.0, False),
    ("put, 16 clients", "p99", 2.0, False),
    ("put, 256 clients", "p99", 2.0, False),
]


def null_servicer_rate() -> float | None:
    """``check perf --load=l`` at the null grpc.aio servicer as generated (issue 14's
    yardstick: ``bench/grpc_servicer.py``), measured in this run."""
    from bench.grpc_servicer import null_servicer

    got = re.match(r"(\d+)", null_servicer("aio", "l"))
    return float(got.group(1)) if got else None


def floors(rows: list[Row], null: float | None) -> str:
    """Issue 14's floors against this run: raftkv / etcd per floor, and whether it holds;
    ``null``: the null servicer's writes/s under ``check perf --load=l`` in this run."""
    by = {(r.server, r.test): r for r in rows}
    rk, et = SERVERS
    lines = ["| floor | needed | raftkv | etcd | ratio | holds |", "|---|---|---:|---:|---:|---|"]

    def line(name: str, need: str, a: float | None, b: float | None, ok: bool) -> None:
        r = f"{a / b:.2f}x" if a and b else ""
        lines.append(f"| {name} | {need} | {fmt(a, 1)} | {fmt(b, 1)} | {r} | "
                     f"{'yes' if ok else '**no**'} |")

    for test, what, bound, at_least in FLOORS:
        a, b = by.get((rk, test)), by.get((et, test))
        if a is None or b is None:
            continue
        field = {"writes/s": "per_s", "p50": "p50_ms", "p99": "p99_ms"}[what]
        x, y = getattr(a, field), getattr(b, field)
        ok = bool(x and y) and (x / y >= bound if at_least else x / y <= bound)
        line(f"{test}: {what}", f"{'>=' if at_least else '<='} {bound}x etcd", x, y, ok)
    a = by.get((rk, "check perf --load=l"))
    if a is not None and a.per_s and null:
        line("check perf --load=l vs the null grpc.aio servicer (its figure in the etcd "
             "column)", ">= 1.0x", a.per_s, null, a.per_s >= null)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loads", type=lambda s: [x for x in s.split(",") if x],
                   default=["s", "m", "l"], help="check perf loads, e.g. s,m,l ('' for none)")
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 16, 256])
    p.add_argument("--total", type=int, default=10_000, help="requests per put/range run")
    p.add_argument("--watch-puts", type=int, default=1000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        for server in SERVERS:
            rows += measure(server, Path(tmp) / server.split()[0], a)
    null = null_servicer_rate() if "l" in a.loads else None
    text = "\n".join([
        *report_head("raftkv next to etcd 3.6.16 (bench/compare.py)", "bench.compare", argv,
                     "3 members each on loopback, fsync on; load from etcdctl 3.6.16 and "
                     f"etcd's benchmark {BENCHMARK_VERSION} on the same machine. Ratios are "
                     "raftkv / etcd."),
        table(rows), "", "## Against issue 14's floors (this run)", "",
        f"The null grpc.aio servicer (bench/grpc_servicer.py, standard loop) took "
        f"{fmt(null, 0)} writes/s under check perf --load=l in this run (the issue's "
        "figure: 2,148).", "", floors(rows, null), ""])
    emit(text, a.out)
    return 0


def report_head(title: str, module: str, argv: list[str] | None, setup: str) -> list[str]:
    """A report's first lines: its title, the command that made it, when, on what machine
    and with what setup."""
    cmd = f".venv/bin/python -m {module} " + " ".join(argv if argv is not None
                                                      else sys.argv[1:])
    return [f"# {title}", "", f"`{cmd}`", "",
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {platform.node()}: "
            f"{os.cpu_count()} cores, {platform.platform()}, Python "
            f"{platform.python_version()}; {setup}", ""]


def emit(text: str, out: Path | None) -> None:
    print(text)
    if out:
        out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
