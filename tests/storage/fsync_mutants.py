"""Remove one fsync at a time from a temp copy of the code; the recovery tests must fail.

Each ``# FSYNC-SITE <name>`` comment in raftkv/storage marks a durability call. For each
site this copies raftkv/, tests/ and pyproject.toml to a temp dir, replaces the marked
statement with ``pass``, and runs tests/storage/test_recovery.py there (pytest's
``pythonpath = ["."]`` puts the mutant first on sys.path; the run checks it imported the
mutant). Exit status 0 only if every mutant is caught.

    .venv/bin/python -m tests.storage.fsync_mutants [site ...]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = re.compile(r"^(\s*)(\S.*?)\s*# FSYNC-SITE ([\w-]+)\s*$")


def sites() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted((ROOT / "raftkv" / "storage").glob("*.py")):
        for line in path.read_text().splitlines():
            m = SITE.match(line)
            if m:
                out[m.group(3)] = path
    return out


def mutate(tmp: Path, site: str, path: Path) -> str:
    target = tmp / path.relative_to(ROOT)
    lines = target.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = SITE.match(line)
        if m and m.group(3) == site:
            lines[i] = f"{m.group(1)}pass  # MUTANT: removed `{m.group(2)}`\n"
            target.write_text("".join(lines))
            return m.group(2)
    raise SystemExit(f"site {site} not found")


def run_one(site: str, path: Path) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"raftkv-mutant-{site}-") as d:
        tmp = Path(d)
        for name in ("raftkv", "tests"):
            shutil.copytree(ROOT / name, tmp / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(ROOT / "pyproject.toml", tmp)
        removed = mutate(tmp, site, path)
        probe = subprocess.run(
            [sys.executable, "-c", "import raftkv.storage.fs as m; print(m.__file__)"],
            cwd=tmp, capture_output=True, text=True, env={"PYTHONPATH": str(tmp)})
        assert probe.stdout.startswith(str(tmp)), probe
        p = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-p", "no:logging", "tests/storage/test_recovery.py"],
            cwd=tmp, capture_output=True, text=True)
        caught = p.returncode != 0
        why = next((ln for ln in p.stdout.splitlines() if ln.startswith("E ")), "")
        print(f"{site:16} removed `{removed}` in {path.name}: "
              f"{'CAUGHT' if caught else 'SURVIVED'}  {why[:150]}")
        return caught


def main(argv: list[str]) -> int:
    found = sites()
    chosen = argv or sorted(found)
    results = [run_one(s, found[s]) for s in chosen]
    print(f"{sum(results)}/{len(results)} fsync mutants caught by the recovery tests")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
