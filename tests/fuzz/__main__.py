"""``python -m tests.fuzz``: long fuzz runs with new seeds (``make fuzz``), or one replay.

Without ``--seed`` it draws fresh seeds until ``--budget`` seconds are spent, alternating
raftkv-only and differential (raftkv vs etcd 3.6.16) runs, and prints each seed; the
first failure stops the run and prints the replay command. Exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

from tests.fuzz.campaign import DEFAULT_OPS, fuzz_differential, fuzz_raftkv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    p.add_argument("--seed", type=int, help="replay this seed (default: fresh seeds)")
    p.add_argument("--ops", type=int, default=DEFAULT_OPS, help="ops per run")
    p.add_argument("--differential", action="store_true",
                   help="with --seed: compare with etcd 3.6.16")
    p.add_argument("--budget", type=float, default=1800.0, help="seconds of fresh seeds")
    args = p.parse_args(argv)
    try:
        if args.seed is not None:
            run = fuzz_differential if args.differential else fuzz_raftkv
            asyncio.run(run(args.seed, args.ops))  # type: ignore[operator]
            print("passed")
            return 0
        deadline = time.monotonic() + args.budget
        i = 0
        while time.monotonic() < deadline:
            seed = random.randrange(1 << 31)
            if i % 2:
                asyncio.run(fuzz_differential(seed, args.ops))
            else:
                asyncio.run(fuzz_raftkv(seed, args.ops))
            print(f"seed {seed} passed", flush=True)
            i += 1
        print(f"{i} runs passed")
        return 0
    except AssertionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
