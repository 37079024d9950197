"""Long randomized campaigns against real etcd: ``python -m tests.e2e.history.torture``.

Runs scenarios (every fault, plus ``mixed``) on 3 and 5 members with seeds drawn from a
base seed, until the time budget is spent, and prints a table: scenario, members, seed,
ops, faults, unknowns, verdict. A failing history is written under ``--artifacts`` with
its seed; ``--scenario NAME --size N --seed S`` replays one run. Exits 1 if any run did
not pass (an anomaly or an inconclusive check).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.history.campaign import HEADER, SERVERS, ScenarioResult, run_scenario
from tests.e2e.history.nemesis import SCENARIOS


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.e2e.history.torture",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--scenario", action="append", choices=SCENARIOS,
                   help="scenario to run (repeatable; default: all)")
    p.add_argument("--size", type=int, action="append", help="members (default: 3 and 5)")
    p.add_argument("--seed", type=int, help="base seed (default: random, printed)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of workload per run")
    p.add_argument("--budget", type=float, default=900.0, help="total seconds, then stop")
    p.add_argument("--runs", type=int, default=0, help="stop after this many runs (0: budget)")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts/history"))
    p.add_argument("--server", choices=SERVERS, default="etcd",
                   help="which server the campaign runs against (etcd: 3.6.16, "
                        "etcd3.5: 3.5.1)")
    return p.parse_args(argv)


async def campaign(args: argparse.Namespace) -> list[ScenarioResult]:
    scenarios = args.scenario or SCENARIOS
    sizes = args.size or [3, 5]
    base = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"base seed {base}; scenarios {', '.join(scenarios)}; sizes {sizes}", flush=True)
    replay = args.seed is not None and len(scenarios) == 1 and len(sizes) == 1
    rng = random.Random(base)
    results: list[ScenarioResult] = []
    deadline = time.monotonic() + args.budget
    print(HEADER, flush=True)
    i = 0
    while time.monotonic() < deadline and (not args.runs or i < args.runs):
        scenario = scenarios[i % len(scenarios)]
        size = sizes[(i // len(scenarios)) % len(sizes)]
        seed = base if replay else rng.randrange(1 << 31)
        with tempfile.TemporaryDirectory(prefix="torture-") as tmp:
            res = await run_scenario(scenario, size, seed, args.duration, Path(tmp),
                                     args.artifacts, server=args.server)
        results.append(res)
        print(res.row(), flush=True)
        if not res.report.ok:
            print(res.report.summary(), flush=True)
        i += 1
        if replay:
            break
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    results = asyncio.run(campaign(args))
    bad = [r for r in results if not r.report.ok]
    total_ops = sum(r.ops for r in results)
    print(f"{len(results)} runs, {total_ops} operations, "
          f"{sum(len(r.faults) for r in results)} faults, "
          f"{sum(r.unknowns for r in results)} unknown outcomes; {len(bad)} not ok")
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
