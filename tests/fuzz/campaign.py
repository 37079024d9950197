"""Fuzz campaigns: one seed against a 3-member raftkv, or against raftkv and etcd 3.6.16.

``fuzz_raftkv(seed)`` runs the full hostile stream (including what etcd itself gets
wrong) and applies the pass condition of :func:`tests.fuzz.runner.check_cluster`.
``fuzz_differential(seed)`` runs the etcd-safe stream of the same seed against both
servers, applies the pass condition to raftkv, and compares every op's outcome with
etcd's: a difference not in :data:`tests.fuzz.differences.ACCEPTED` fails the run, and so
do unequal final keyspaces.

Invariant: every cluster started here is stopped (by pid) before the function returns or
raises; a failure message names the seed and the command that replays it.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import differences, runner
from tests.fuzz.generator import Generator
from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster

DEFAULT_OPS = 300


def replay(seed: int, ops: int, differential: bool) -> str:
    return (f"python -m tests.fuzz --seed {seed} --ops {ops}"
            + (" --differential" if differential else ""))


@dataclass
class Run:
    sent: list[runner.Sent]
    state: runner.Dump


async def _run(cluster: Cluster, gen: Generator, ops: int, logs: Path) -> Run:
    try:
        await asyncio.to_thread(cluster.start)
        sent = await runner.run_stream(cluster.endpoints, gen.stream(ops))
        logs.write_text("\n".join(s.line for s in sent) + "\n")
        state = await runner.check_cluster(cluster)
        return Run(sent, state)
    except BaseException:
        print(cluster.logs()[-20000:])
        raise
    finally:
        await asyncio.to_thread(cluster.stop)


async def fuzz_raftkv(seed: int, ops: int = DEFAULT_OPS, workdir: Path | None = None,
                      etcd_safe: bool = False) -> Run:
    print(f"fuzz seed {seed} ({ops} ops); replay: {replay(seed, ops, False)}", flush=True)
    work = workdir or Path(tempfile.mkdtemp(prefix=f"fuzz-{seed}-"))
    try:
        return await _run(raftkv_cluster(work / "raftkv", 3), Generator(seed, etcd_safe=etcd_safe),
                          ops, work / "raftkv-ops.log")
    except BaseException as exc:
        raise AssertionError(f"fuzz seed {seed} failed ({exc}); ops: {work}/raftkv-ops.log; "
                             f"replay: {replay(seed, ops, False)}") from exc


def compare(ours: list[runner.Sent], theirs: list[runner.Sent]) -> list[str]:
    """Every difference between the two runs that the table does not accept."""
    problems = []
    for a, b in zip(ours, theirs, strict=True):
        if differences.same(a.outcome, b.outcome):
            continue
        if differences.accepted(a.op.method, a.request, a.outcome, b.outcome) is None:
            problems.append(f"{a.line[:300]}\n    raftkv: {a.outcome}\n    etcd:   {b.outcome}")
    return problems


async def fuzz_differential(seed: int, ops: int = DEFAULT_OPS,
                            workdir: Path | None = None) -> tuple[Run, Run]:
    print(f"differential fuzz seed {seed} ({ops} ops); replay: {replay(seed, ops, True)}",
          flush=True)
    work = workdir or Path(tempfile.mkdtemp(prefix=f"fuzz-diff-{seed}-"))
    where = f"seed {seed}; ops in {work}; replay: {replay(seed, ops, True)}"
    ours = await fuzz_raftkv(seed, ops, work, etcd_safe=True)
    theirs = await _run(Cluster(work / "etcd", 3, binary=etcd36_bin()),
                        Generator(seed, etcd_safe=True), ops, work / "etcd-ops.log")
    problems = compare(ours.sent, theirs.sent)
    assert not problems, (f"{len(problems)} outcome(s) differ from etcd 3.6.16 and are not "
                          f"in tests/fuzz/differences.py ({where}):\n" + "\n".join(problems[:15]))
    if ours.state != theirs.state:
        detail = runner.describe_difference([ours.state, theirs.state], [0, 0])
        raise AssertionError(f"raftkv (m0) and etcd (m1) end with different keyspaces "
                             f"({where}):\n{detail}")
    return ours, theirs
