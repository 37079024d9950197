"""Two raftkv trees side by side: a git revision against this working tree, in alternating
rounds, each round on fresh 3-member clusters under the same load.

On a VM whose speed drifts by 2x within an hour, one run of each tree says little; rounds
that alternate the trees, with the count of rounds each one won, say whether a change
helps. Each round starts a cluster of one tree (its source on the members' PYTHONPATH),
runs etcd's ``benchmark put`` through it as ``bench.cpu_split`` does (one client via the
leader; more over all members) and reads every member thread's CPU; then the same for the
other tree. The report gives each round's figures and, per tree, the medians of writes/s,
p50 and CPU per write, and how many rounds it won on each. Run (never in ``make test``)::

    .venv/bin/python -m bench.ab --base <rev> [--clients 1] [--total 1500] [--rounds 6]
        [--out bench/results/ab-<topic>.md]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.compare import BENCHMARK_VERSION, emit, report_head
from bench.cpu_split import Split, split
from tests.support.etcd import raftkv_cluster

ROOT = Path(__file__).resolve().parents[1]


def export(rev: str, into: Path) -> Path:
    """The ``raftkv`` package of git revision ``rev``, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "raftkv"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def summary(names: list[str], rounds: list[dict[str, Split]]) -> list[str]:
    """Per tree: the medians over rounds and the rounds it won (more writes/s, lower p50,
    less CPU per write than the other tree in that round)."""
    lines = ["| tree | writes/s (median) | p50 ms (median) | CPU ms/write (median) "
             "| rounds won: writes/s | p50 | CPU |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        mine = [r[name] for r in rounds]

        won_rate = _won(name, rounds, lambda m, o: m.per_s > o.per_s)
        won_p50 = _won(name, rounds, lambda m, o: m.p50_ms < o.p50_ms)
        won_cpu = _won(name, rounds, lambda m, o: m.total_ms < o.total_ms)
        lines.append(
            f"| {name} | {statistics.median(m.per_s for m in mine):.0f} "
            f"| {statistics.median(m.p50_ms for m in mine):.2f} "
            f"| {statistics.median(m.total_ms for m in mine):.3f} "
            f"| {won_rate} of {len(rounds)} | {won_p50} | {won_cpu} |")
    return lines


def _won(name: str, rounds: list[dict[str, Split]],
         better: Callable[[Split, Split], bool]) -> int:
    """The rounds in which ``name`` did better than every other tree."""
    return sum(all(better(r[name], s) for n, s in r.items() if n != name) for r in rounds)


def round_lines(names: list[str], rounds: list[dict[str, Split]]) -> list[str]:
    lines = ["| round | tree | writes/s | p50 ms | leader ms/write | followers ms/write "
             "| total ms/write |", "|---:|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rounds):
        for name in names:
            s = r[name]
            lines.append(f"| {i + 1} | {name} | {s.per_s:.0f} | {s.p50_ms:.2f} "
                         f"| {s.ms(s.leader_s):.3f} | {s.ms(s.followers_s):.3f} "
                         f"| {s.total_ms:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="git revision to run against this tree")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--total", type=int, default=1500, help="writes per run")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", a.base],
                         capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        trees = {f"base {rev}": export(rev, Path(tmp)), "this tree": ROOT}
        names = list(trees)
        rounds: list[dict[str, Split]] = []
        for i in range(a.rounds):
            got: dict[str, Split] = {}
            for name in names if i % 2 == 0 else names[::-1]:  # neither always goes first
                with tempfile.TemporaryDirectory(prefix="cluster-", dir=tmp) as d:
                    c = raftkv_cluster(Path(d), 3,
                                       env={"PYTHONPATH": str(trees[name])}).start()
                    try:
                        got[name] = split(c, "raftkv", a.clients, a.total)
                    finally:
                        c.stop()
                print(f"round {i + 1} {name}: {got[name].per_s:.0f} writes/s", flush=True)
            rounds.append(got)
    text = "\n".join([
        *report_head(f"raftkv {rev} against this tree, {a.clients} client(s) (bench/ab.py)",
                     "bench.ab", argv,
                     f"3 members on loopback, fsync on; etcd's benchmark {BENCHMARK_VERSION} "
                     f"put, {a.total} writes of 256 bytes per run; rounds alternate the "
                     "trees, each on fresh clusters"),
        *summary(names, rounds), "", *round_lines(names, rounds), ""])
    emit(text, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
