"""``python -m raftkv.demo [split-brain | fencing]``: choose a demo.

Without a name it runs the crash demo (``make demo``). Bad usage is one sentence and exit
code 2 (:data:`raftkv.demo.report.EXIT_USAGE`); the test-only
``--unsafe-deposed-leader-serves`` outside pytest is refused with exit code 4, as the
member itself would refuse it.
"""

from __future__ import annotations

import argparse
import os
import sys

from raftkv.demo.report import EXIT_USAGE
from raftkv.server import unsafe


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"raftkv.demo: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _claims(claims: dict[int, str]) -> str:
    return "exit codes, one per claim:\n" + "\n".join(f"  {k}  {v}" for k, v in claims.items())


def build_parser() -> argparse.ArgumentParser:
    from raftkv.demo.fencing import CLAIMS as FENCING
    from raftkv.demo.splitbrain import CLAIMS as SPLIT

    p = _Parser(prog="python -m raftkv.demo",
                description="Real raftkv members on loopback show what the consensus "
                            "article claims. Without a demo name: the leader-crash demo.")
    sub = p.add_subparsers(dest="demo", parser_class=_Parser)
    raw = argparse.RawDescriptionHelpFormatter
    sb = sub.add_parser("split-brain", help="five members cut 2|3: the minority commits "
                                            "nothing (claims: exit codes 10-18)",
                        epilog=_claims(SPLIT), formatter_class=raw)
    sb.add_argument("--unsafe-deposed-leader-serves", action="store_true",
                    help=argparse.SUPPRESS)  # test only: see raftkv.server.unsafe
    fe = sub.add_parser("fencing", help="a paused lock holder's late write is refused by a "
                                        "fencing token (claims: exit codes 20-24)",
                        epilog=_claims(FENCING), formatter_class=raw)
    fe.add_argument("--no-fencing-check", action="store_true",
                    help="run the first round without the token check too (the demo then "
                         "reports the overwrite and fails)")
    fe.add_argument("--ttl", type=int, default=2, help="the lock's lease TTL in seconds "
                                                       "(default 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args([] if argv is None else argv)
    if ns.demo is None:
        from raftkv.demo import crash

        return crash.main()
    if ns.demo == "split-brain":
        if ns.unsafe_deposed_leader_serves:
            try:
                unsafe.deposed_leader_serves({**os.environ, unsafe.DEPOSED_LEADER_SERVES: "1"})
            except unsafe.UnsafeSwitchRefused as exc:
                sys.stderr.write(f"raftkv.demo: {exc}\n")
                return unsafe.EXIT_REFUSED
        from raftkv.demo import splitbrain

        return splitbrain.main(ns.unsafe_deposed_leader_serves)
    if ns.ttl < 1:
        sys.stderr.write("raftkv.demo: --ttl must be at least 1 second\n")
        return EXIT_USAGE
    from raftkv.demo import fencing

    return fencing.main(ns.ttl, fenced_first=not ns.no_fencing_check)
