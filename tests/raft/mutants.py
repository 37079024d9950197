"""Planted bugs: named mutations of the Raft core, each a real Raft mistake.

``make mutants`` (``python -m tests.raft.mutants``) copies the package and the core's
tests into a temporary directory, applies one mutation at a time to the copy (never to
the working tree), runs the core's suite there and records which test failed first.
Every mutation must be caught; the command exits 1 if one survives. Each patch must
match its source exactly once, so a refactoring that silently disarms a mutant fails
loudly instead.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to raftkv/raft
    original: str
    mutated: str
    mistake: str


MUTANTS = [
    Mutant(
        "commit-old-term", "log.py",
        "if max_index > self.committed and self.term_or_zero(max_index) == term:",
        "if max_index > self.committed:",
        "count replicas of an entry from an earlier term toward commit (Figure 8)",
    ),
    Mutant(
        "double-vote", "raft.py",
        "            self.vote == m.sender\n"
        "            or (self.vote == NONE and self.lead == NONE)",
        "            self.vote == m.sender\n            or self.lead == NONE",
        "grant a second vote in the same term",
    ),
    Mutant(
        "no-log-check", "raft.py",
        "if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):",
        "if can_vote:",
        "ignore the log up-to-date check when voting (§5.4.1)",
    ),
    Mutant(
        "read-index-no-quorum", "raft.py",
        "        self.read_only.recv_ack(self.id, m.context)\n"
        "        self.bcast_heartbeat(m.context)",
        "        self._respond_read_index(m, self.raft_log.committed)",
        "answer ReadIndex without a quorum round (stale reads from a deposed leader)",
    ),
    Mutant(
        "promote-uncaught-learner", "raft.py",
        "if learner.match < leader_match * LEARNER_READY_RATIO:",
        "if False:",
        "promote a learner before it has caught up",
    ),
    Mutant(
        "conf-change-on-append", "raft.py",
        "                pending = last + i + 1",
        "                pending = last + i + 1\n"
        "                self.apply_conf_change(decode_conf_change(e.data))",
        "apply a configuration change when appended, before it commits",
    ),
    Mutant(
        "no-step-down-on-higher-term", "raft.py",
        "            else:\n                self.become_follower(m.term, NONE)\n"
        "        elif m.term < self.term:",
        "            elif self.state is not StateType.LEADER:\n"
        "                self.become_follower(m.term, NONE)\n        elif m.term < self.term:",
        "a leader that sees a higher term keeps leading",
    ),
    Mutant(
        "skip-noop", "raft.py",
        "        self.append_entry([Entry(0, 0)])\n        # No configuration change",
        "        # No configuration change",
        "a new leader does not append an empty entry of its term",
    ),
    Mutant(
        "backtrack-off-by-one", "progress.py",
        "self.next = max(min(rejected, match_hint + 1), self.match + 1)",
        "self.next = max(min(rejected, match_hint + 2), self.match + 1)",
        "off-by-one in log backtracking (probe one entry too far)",
    ),
    Mutant(
        "accept-stale-append", "raft.py",
        "        elif m.term < self.term:\n            if (self.check_quorum",
        "        elif m.term < self.term and m.type is not MessageType.APP:\n"
        "            if (self.check_quorum",
        "accept appends from a leader of a stale term",
    ),
    Mutant(
        "heartbeat-commit-past-match", "raft.py",
        "commit = min(self.prs.progress[to].match, self.raft_log.committed)",
        "commit = self.raft_log.committed",
        "heartbeat carries a commit index beyond what the follower is known to hold",
    ),
    Mutant(
        "no-check-quorum", "raft.py",
        "            if not self.prs.quorum_active():",
        "            if False:",
        "a leader cut off from the quorum never steps down",
    ),
    Mutant(
        "prevote-bumps-term", "raft.py",
        "        self._step = self._step_candidate\n        self.prs.reset_votes()\n"
        "        self.state = StateType.PRE_CANDIDATE",
        "        self._step = self._step_candidate\n        self.prs.reset_votes()\n"
        "        self.term += 1\n        self.state = StateType.PRE_CANDIDATE",
        "pre-vote raises the term (a rejoining node disrupts the cluster)",
    ),
]


def prepare(tmp: Path) -> None:
    shutil.copytree(ROOT / "raftkv", tmp / "raftkv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "__init__.py", tmp / "tests" / "__init__.py")
    # the pinned trace digests fail on any change of behaviour, so they would "catch" every
    # mutant first and hide which real test does
    shutil.copytree(ROOT / "tests" / "raft", tmp / "tests" / "raft",
                    ignore=shutil.ignore_patterns("__pycache__", "mutants.py",
                                                  "test_sim_replay_pinned.py"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")


def apply(tmp: Path, m: Mutant) -> None:
    path = tmp / "raftkv" / "raft" / m.file
    src = path.read_text()
    n = src.count(m.original)
    if n != 1:
        raise SystemExit(f"mutant {m.name}: pattern found {n} times in {m.file}; update it")
    path.write_text(src.replace(m.original, m.mutated))


def run_suite(tmp: Path, seeds: int, tests: str = "tests/raft") -> tuple[bool, str]:
    env = {**os.environ, "RAFT_SIM_SEEDS": str(seeds), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", tests, "-x", "-q", "-p", "no:cacheprovider",
         "--timeout=600", "-o", "addopts="],
        cwd=tmp, env=env, capture_output=True, text=True,
    )
    out = proc.stdout + proc.stderr
    failed = re.findall(r"^FAILED (\S+)", out, re.M)
    return proc.returncode != 0, failed[0] if failed else out.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200, help="simulation seeds per mutant")
    ap.add_argument("--tests", default="tests/raft",
                    help="which tests must catch them (e.g. tests/raft/test_simulation.py "
                         "to see what the randomized simulation alone catches)")
    ap.add_argument("names", nargs="*", help="run only these mutants")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    rows = []
    with tempfile.TemporaryDirectory(prefix="raftkv-mutants-") as d:
        base = Path(d) / "base"
        prepare(base)
        failed, detail = run_suite(base, args.seeds, args.tests)
        if failed:
            print(f"the unmutated suite fails: {detail}", file=sys.stderr)
            return 2
        for m in chosen:
            tmp = Path(d) / m.name
            shutil.copytree(base, tmp)
            apply(tmp, m)
            t0 = time.monotonic()
            caught, by = run_suite(tmp, args.seeds, args.tests)
            rows.append((m, caught, by, time.monotonic() - t0))
            print(f"{m.name:28} {'caught' if caught else 'SURVIVED':8} {by}", flush=True)
            shutil.rmtree(tmp)
    print()
    print(f"| {'mutation':28} | {'mistake':70} | caught by |")
    print(f"|{'-' * 30}|{'-' * 72}|-----------|")
    for m, caught, by, _secs in rows:
        print(f"| {m.name:28} | {m.mistake:70} | {by if caught else 'SURVIVED'} |")
    survived = [m.name for m, caught, _, _ in rows if not caught]
    if survived:
        print(f"\n{len(survived)} mutant(s) survived: {', '.join(survived)}", file=sys.stderr)
        return 1
    print(f"\nall {len(rows)} mutants caught")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
