"""The ``raftkv`` command's entry point: ``raftkv snapshot ...`` goes to etcdutl's verbs
(:mod:`raftkv.cli_snapshot`), anything else runs a member (:mod:`raftkv.cli`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["snapshot"]:
        from raftkv.cli_snapshot import main as snapshot_main

        return snapshot_main(args[1:])
    from raftkv.cli import main as serve_main

    return serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
