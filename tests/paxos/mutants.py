"""Planted bugs in the Paxos core, each a real Paxos mistake, each caught by a named check.

``python -m tests.paxos.mutants`` copies ``raftkv/`` and the Paxos harness into a temporary
directory, applies one mutation at a time to the copy (never to the working tree), runs the
simulation over seeds ``0..seeds-1`` there (``tests.paxos.sim_harness --count``) and reports
the first failing seed and the check that failed. A mutant passes only if the check that
fails is the one it names, within the stated number of seeds; every patch must match its
source exactly once, so a refactoring that silently disarms a mutant fails loudly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to raftkv/paxos
    patches: tuple[tuple[str, str], ...]  # (original, mutated), each matching once
    mistake: str
    check: str  # the Checker check that must catch it
    seeds: int  # caught within this many seeds (from seed 0)
    off: tuple[str, ...] = ()  # checks switched off, to show what else the bug breaks
    kind: str | None = None  # only seeds of this protocol ("basic", "multi"); None: all


NO_QUORUM = (("    return promises >= quorum(cluster)", "    return promises >= 1"),)
IGNORE_VALUES = ((
    "            if a.instance == instance and (best is None or a.ballot > best.ballot):\n"
    "                best = a",
    "            if False:\n                best = a"),)
REUSE = (("        self.used = st.max_round\n        self.seen = st.promised.round",
          "        self.used = 0\n        self.seen = 0"),)
NO_PERSIST = (("        persist.promised = b", "        pass"),
              ("        persist.accepted.append(a)\n", ""))

MUTANTS = [
    Mutant("accept-without-promise-quorum", "proposer.py", NO_QUORUM,
           "start phase 2 before a majority promised (its own promise is enough)",
           "one value per instance", 10),
    Mutant("ignore-promised-values", "proposer.py", IGNORE_VALUES,
           "propose one's own value although a promise reported an accepted one",
           "one value per instance", 10),
    Mutant("reuse-proposal-number", "proposer.py", REUSE,
           "a restarted proposer counts its rounds from zero again",
           "unique ballot", 10),
    Mutant("skip-persistence", "acceptor.py", NO_PERSIST,
           "an acceptor replies without handing its promise and acceptance to storage",
           "durable choice", 10),
    # the same bug with its first-line check off: lost acceptances make learners disagree
    Mutant("skip-persistence/consequence", "acceptor.py", NO_PERSIST,
           "as skip-persistence; 'durable choice' off: crashes lose acceptances",
           "learners agree", 60, off=("durable choice",)),
    # the same bugs in Basic (single-decree) Paxos alone: seeds 0..N-1 that run it
    Mutant("accept-without-promise-quorum/basic", "proposer.py", NO_QUORUM,
           "as above, Basic Paxos seeds only", "one value per instance", 20, kind="basic"),
    Mutant("ignore-promised-values/basic", "proposer.py", IGNORE_VALUES,
           "as above, Basic Paxos seeds only", "one value per instance", 20, kind="basic"),
    Mutant("reuse-proposal-number/basic", "proposer.py", REUSE,
           "as above, Basic Paxos seeds only", "unique ballot", 80, kind="basic"),
    Mutant("skip-persistence/basic", "acceptor.py", NO_PERSIST,
           "as above, Basic Paxos seeds only", "durable choice", 10, kind="basic"),
]


def prepare(tmp: Path) -> None:
    shutil.copytree(ROOT / "raftkv", tmp / "raftkv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "__init__.py", tmp / "tests" / "__init__.py")
    shutil.copytree(ROOT / "tests" / "paxos", tmp / "tests" / "paxos",
                    ignore=shutil.ignore_patterns("__pycache__"))


def apply(tmp: Path, m: Mutant) -> None:
    path = tmp / "raftkv" / "paxos" / m.file
    src = path.read_text()
    for original, mutated in m.patches:
        n = src.count(original)
        if n != 1:
            raise SystemExit(f"mutant {m.name}: pattern found {n} times in {m.file}; update it")
        src = src.replace(original, mutated)
    path.write_text(src)


@dataclass(frozen=True)
class Outcome:
    caught: bool
    seed: int  # the first failing seed, -1 when none failed
    check: str  # the name of the check that failed ("" when none did)
    detail: str


def run_seeds(tmp: Path, seeds: int, off: tuple[str, ...] = (),
              kind: str | None = None) -> Outcome:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp)}
    flags = [f"--off={c}" for c in off] + ([f"--kind={kind}"] if kind else [])
    proc = subprocess.run(
        [sys.executable, "-m", "tests.paxos.sim_harness", "--seed", "0", "--count", str(seeds),
         *flags],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )
    m = re.search(r"^seed (\d+): FAILED: ([^:]+): (.*)$", proc.stderr, re.M)
    if proc.returncode == 0 or m is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return Outcome(False, -1, "", tail[0] if tail else "")
    return Outcome(True, int(m.group(1)), m.group(2), m.group(3))


def run_mutant(m: Mutant, seeds: int | None = None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="paxos-mutant-") as d:
        tmp = Path(d)
        prepare(tmp)
        apply(tmp, m)
        return run_seeds(tmp, seeds if seeds is not None else m.seeds, m.off, m.kind)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="run only these mutants")
    args = ap.parse_args(argv)
    known = {m.name for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown mutant(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    bad = 0
    print(f"| {'mutation':36} | {'must be caught by':22} | {'within':6} | caught at | by |")
    print(f"|{'-' * 38}|{'-' * 24}|{'-' * 8}|-----------|----|")
    for m in chosen:
        o = run_mutant(m)
        ok = o.caught and o.check == m.check
        bad += not ok
        where = f"seed {o.seed}" if o.caught else "SURVIVED"
        print(f"| {m.name:36} | {m.check:22} | {m.seeds:6} | {where:9} | {o.check or '-'} |",
              flush=True)
    if bad:
        print(f"\n{bad} mutant(s) not caught by their named check", file=sys.stderr)
        return 1
    print(f"\nall {len(chosen)} mutants caught by their named checks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
