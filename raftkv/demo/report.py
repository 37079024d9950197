"""The demos' report: a table of what happened, then each claim with [ok] or [FAILED], and
the exit code.

Invariants: the exit code is 0 only when every claim held; otherwise it is the code of
the first failed claim, and each claim of a demo has its own code (so a script can tell
which one failed). :data:`EXIT_SETUP` (the demo could not set up what it shows) and
:data:`EXIT_USAGE` are never a claim's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_USAGE = 2
EXIT_SETUP = 3


@dataclass
class Claim:
    code: int
    text: str
    held: bool
    detail: str = ""


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def row(self, what: str, value: str) -> None:
        self.rows.append((what, value))

    def claim(self, code: int, text: str, held: bool, detail: str = "") -> bool:
        assert code not in (0, EXIT_USAGE, EXIT_SETUP)
        assert all(c.code != code for c in self.claims), f"claim code {code} used twice"
        self.claims.append(Claim(code, text, held, detail))
        return held

    def exit_code(self) -> int:
        return next((c.code for c in self.claims if not c.held), 0)

    def render(self) -> str:
        lines = [""]
        width = max((len(a) for a, _ in self.rows), default=0)
        lines += [f"  {a:<{width}}  {b}" for a, b in self.rows]
        lines.append("")
        for c in self.claims:
            mark = "ok" if c.held else f"FAILED, exit {c.code}"
            lines.append(f"  [{mark}] {c.text}" + (f": {c.detail}" if c.detail else ""))
        failed = [c for c in self.claims if not c.held]
        lines.append("")
        lines.append("Every claim held." if not failed else
                     f"{len(failed)} of {len(self.claims)} claims failed.")
        return "\n".join(lines)
