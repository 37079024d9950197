"""Where one put's time goes on a raftkv leader: etcd's benchmark tool writes through the
leader while py-spy samples the leader's every thread, idle time included, so the main
thread's busy share says how much of the event loop's thread one request costs.

Prints the benchmark's requests/s, p50 and p99; per thread, how much of the run it was
busy; the main thread's CPU per request; its split between gRPC's own callbacks (the
self time of ``Handle._run``: grpc.aio's Cython code, which py-spy cannot see into),
raftkv and asyncio; and the raftkv frames with the largest inclusive share.

Needs py-spy (``pip install py-spy``; ``--py-spy PATH`` or on PATH) and the benchmark tool
(``make etcd``). Run: ``.venv/bin/python -m bench.profile_put [--members 1] [--clients 1]
[--total 6000] [--out bench/results/profile-one-client.md]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.compare import benchmark_bin, leader_and_follower, parse_benchmark
from tests.support.etcd import raftkv_cluster

RATE = 500  # samples per second


def summarize(raw: str, requests: float, seconds: float) -> list[str]:
    """The summary lines of a ``py-spy record -f raw --idle --threads`` file."""
    per_thread: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    grpc = 0
    inclusive: Counter[str] = Counter()
    main_busy = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        per_thread[thread] += n
        idle = frames[-1].startswith(("EpollSelector.select", "_worker ", "Thread.run ",
                                      "Condition.wait", "Event.wait"))
        if idle:
            continue
        busy[thread] += n
        if thread != "MainThread":
            continue
        main_busy += n
        if frames[-1].startswith("Handle._run "):
            grpc += n
        for f in dict.fromkeys(f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                               for f in frames[1:] if "(raftkv/" in f):
            inclusive[f] += n
    lines = ["busy share of the run, per thread:"]
    for t, total in per_thread.most_common():
        lines.append(f"  {100 * busy[t] / total:5.1f}%  {t}")
    ms = main_busy / RATE / requests * 1000 if requests else float("nan")
    lines.append(f"main thread: {ms:.2f} ms busy per request ({requests:.0f} requests in "
                 f"{seconds:.1f} s); of that, gRPC's own callbacks (Handle._run self) "
                 f"{100 * grpc / max(main_busy, 1):.0f}%")
    lines.append("raftkv frames, inclusive share of the main thread's busy samples:")
    for f, n in inclusive.most_common(20):
        lines.append(f"  {100 * n / max(main_busy, 1):5.1f}%  {f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--total", type=int, default=6000)
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if not a.py_spy or not Path(a.py_spy).exists():
        sys.stderr.write("profile_put: py-spy not found (pip install py-spy, or --py-spy)\n")
        return 2
    with tempfile.TemporaryDirectory(dir=".") as d:
        c = raftkv_cluster(Path(d), a.members).start()
        try:
            lead = leader_and_follower(c)[0] if a.members > 1 else c.members[0]
            assert lead.proc is not None
            raw = Path(d) / "profile.raw"
            spy = subprocess.Popen([a.py_spy, "record", "-p", str(lead.proc.pid), "-r",
                                    str(RATE), "--idle", "--threads", "-f", "raw", "-o",
                                    str(raw), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                t0 = time.monotonic()
                r = subprocess.run(
                    [str(benchmark_bin()), f"--endpoints=127.0.0.1:{lead.client_port}",
                     f"--clients={a.clients}", f"--conns={min(a.clients, 16)}", "put",
                     f"--total={a.total}", "--key-size=8", "--val-size=256"],
                    capture_output=True, text=True, timeout=1800, check=True)
                seconds = time.monotonic() - t0
            finally:
                spy.send_signal(2)  # py-spy writes its file on SIGINT
                spy.wait(60)
            rps, p50, p99 = parse_benchmark(r.stdout)
            lines = [f"members={a.members} clients={a.clients} total={a.total}: "
                     f"{rps:.0f} writes/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                     *summarize(raw.read_text(), a.total, seconds)]
        finally:
            c.stop()
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            f.write(f"```\n$ {' '.join(sys.argv)}   # {when}\n{text}\n```\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
