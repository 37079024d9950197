"""Run every checker on a history; write a failing history to a file with its explanation.

The report file is JSON: the seed and scenario (so the run replays), the faults injected,
each checker's findings (kind, sentence, key, revision, operation ids), the described
operations the findings name, and the whole history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.e2e.history import linearizability, lost_writes, revisions, watch_check
from tests.e2e.history.history import History
from tests.e2e.history.verdict import Outcome, Verdict


@dataclass
class Report:
    verdicts: list[Verdict]
    path: Path | None = None

    @property
    def outcome(self) -> Outcome:
        outs = {v.outcome for v in self.verdicts}
        if Outcome.ANOMALY in outs:
            return Outcome.ANOMALY
        if Outcome.INCONCLUSIVE in outs:
            return Outcome.INCONCLUSIVE
        return Outcome.OK

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def summary(self) -> str:
        text = "\n".join(v.summary() for v in self.verdicts)
        if self.path is not None:
            text += f"\nhistory written to {self.path}"
        return text


def check_all(history: History, final: bool = True, max_unknowns: int = 40) -> Report:
    verdicts = [
        linearizability.check(history, max_unknowns=max_unknowns),
        revisions.check(history),
    ]
    if final:
        verdicts.append(lost_writes.check(history))
    if history.watches:
        verdicts.append(watch_check.check(history))
    return Report(verdicts)


def write_failure(history: History, report: Report, directory: Path) -> Path:
    """Save the failing history with seed and explanation; return the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"history-{history.scenario or 'unit'}-seed{history.seed}.json"
    ops = history.by_id()
    named = sorted({i for v in report.verdicts for f in v.findings for i in f.ops})
    doc = {
        "seed": history.seed,
        "scenario": history.scenario,
        "replay": f"python -m tests.e2e.history.torture --scenario {history.scenario} "
                  f"--seed {history.seed}",
        "outcome": str(report.outcome),
        "faults": history.faults,
        "explanation": [
            {"checker": v.checker, **asdict(f)} for v in report.verdicts for f in v.findings
        ] + [{"checker": v.checker, "inconclusive": r} for v in report.verdicts
             for r in v.inconclusive],
        "operations_named": [ops[i].describe() for i in named if i in ops],
        "history": history.to_json(),
    }
    path.write_text(json.dumps(doc, indent=1))
    report.path = path
    return path
