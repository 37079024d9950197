"""What a checker says about a history: ok, anomaly (with the operations that prove it), or
inconclusive (it could not decide within its bounds, which a test must treat as not passing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    ANOMALY = "anomaly"
    INCONCLUSIVE = "inconclusive"


@dataclass
class Finding:
    """One problem: a sentence, the key and revision involved, and the operation ids."""

    kind: str
    message: str
    key: str = ""
    revision: int = 0
    ops: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        where = []
        if self.key:
            where.append(f"key={self.key}")
        if self.revision:
            where.append(f"rev={self.revision}")
        if self.ops:
            where.append("ops=" + ",".join(f"#{i}" for i in self.ops))
        return f"[{self.kind}] {self.message}" + (f" ({' '.join(where)})" if where else "")


@dataclass
class Verdict:
    checker: str
    findings: list[Finding] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        if self.findings:
            return Outcome.ANOMALY
        if self.inconclusive:
            return Outcome.INCONCLUSIVE
        return Outcome.OK

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def summary(self, limit: int = 5) -> str:
        lines = [f"{self.checker}: {self.outcome}"]
        lines += [f"  {f}" for f in self.findings[:limit]]
        if len(self.findings) > limit:
            lines.append(f"  ... and {len(self.findings) - limit} more")
        lines += [f"  inconclusive: {r}" for r in self.inconclusive[:limit]]
        return "\n".join(lines)
