"""raftkv on uvloop next to raftkv on asyncio's own loop, with etcd 3.6.16 in the same run
(issue 14: what ``raftkv.server.eventloop`` buys).

Each round starts, one after the other, a fresh 3-member cluster of raftkv with
``RAFTKV_EVENT_LOOP=asyncio``, one with uvloop (the default) and one of etcd 3.6.16
(``bench.compare.start``), and gives each, with etcd's benchmark: one client putting via
the leader and via a follower, one client's linearizable range via the leader and via a
follower, and 256 clients putting over all members (writes/s and the members' CPU per
write). Rounds interleave the three so that the machine's drift hits them alike; the
table gives each figure's mean over the rounds, and the ratios. Run (never in
``make test``)::

    .venv/bin/python -m bench.event_loop --out bench/results/event-loop.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.compare import (
    BENCHMARK_VERSION,
    emit,
    leader_and_follower,
    puts,
    ranges,
    report_head,
    start,
)
from raftkv.server.eventloop import EVENT_LOOP_ENV

TARGETS = ("raftkv, asyncio", "raftkv, uvloop", "etcd 3.6.16")
FIGURES = ("put 1 client via leader, p50 ms", "put 1 client via follower, p50 ms",
           "linearizable range 1 client via leader, p50 ms",
           "linearizable range 1 client via follower, p50 ms",
           "put 256 clients, writes/s", "put 256 clients, p99 ms",
           "put 256 clients, members' CPU ms/write")


@contextmanager
def environment(target: str) -> Iterator[None]:
    """The members a cluster starts inherit this process's environment."""
    saved = os.environ.get(EVENT_LOOP_ENV)
    if target.startswith("raftkv, "):
        os.environ[EVENT_LOOP_ENV] = target.split(", ")[1]
    try:
        yield
    finally:
        os.environ.pop(EVENT_LOOP_ENV, None)
        if saved is not None:
            os.environ[EVENT_LOOP_ENV] = saved


def one_round(target: str, workdir: Path, single: int, total: int) -> dict[str, float]:
    server = target.split(",")[0]
    with environment(target):
        c = start(server, workdir)
    try:
        leader, follower = leader_and_follower(c)
        got: dict[str, float] = {}
        for who, m in (("leader", leader), ("follower", follower)):
            got[f"put 1 client via {who}, p50 ms"] = puts(
                c, server, "", [m], 1, single).p50_ms or 0.0
            got[f"linearizable range 1 client via {who}, p50 ms"] = ranges(
                c, server, "l", 1, single, [m], who).p50_ms or 0.0
        many = puts(c, server, "", c.members, 256, total)
        got["put 256 clients, writes/s"] = many.per_s or 0.0
        got["put 256 clients, p99 ms"] = many.p99_ms or 0.0
        got["put 256 clients, members' CPU ms/write"] = many.cpu_per_1k or 0.0
        return got
    except BaseException:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        c.stop()


def table(runs: dict[str, list[dict[str, float]]]) -> str:
    mean = {t: {f: statistics.fmean(r[f] for r in runs[t]) for f in FIGURES} for t in runs}
    lines = ["| figure (mean of the rounds) | " + " | ".join(TARGETS) +
             " | uvloop / asyncio | uvloop / etcd |", "|---" + "|---:" * 5 + "|"]
    for f in FIGURES:
        a, u, e = (mean[t][f] for t in TARGETS)
        digits = 0 if "writes/s" in f else 2
        lines.append(f"| {f} | {a:.{digits}f} | {u:.{digits}f} | {e:.{digits}f} | "
                     f"{u / a:.2f} | {u / e:.2f} |")
    lines += ["", "Each round, in order of running:", ""]
    for i in range(len(runs[TARGETS[0]])):
        for t in TARGETS:
            r = runs[t][i]
            lines.append(f"- round {i + 1}, {t}: " + "; ".join(
                f"{f.split(',')[0]} {f.split(', ')[-1]} {r[f]:.2f}" for f in FIGURES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--single", type=int, default=1000, help="requests per one-client run")
    p.add_argument("--total", type=int, default=15_000, help="puts of the 256-client run")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="event-loop-") as tmp:
        for i in range(a.rounds):
            for t in TARGETS:
                work = Path(tmp) / f"{i}-{t.replace(', ', '-').replace(' ', '')}"
                runs[t].append(one_round(t, work, a.single, a.total))
    text = "\n".join([
        *report_head("raftkv on uvloop and on asyncio's loop, etcd 3.6.16 beside them "
                     "(bench/event_loop.py)", "bench.event_loop", argv,
                     "3 members each on loopback, fsync on; load from etcd's benchmark "
                     f"{BENCHMARK_VERSION}, 256-byte values for puts; CPU is utime + "
                     "stime of the members."),
        table(runs), ""])
    emit(text, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
