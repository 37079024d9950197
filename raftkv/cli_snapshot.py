"""``raftkv snapshot status|restore``: etcdutl's snapshot verbs for raftkv snapshot files.

``status FILE [-w simple|table|json]`` prints hash, revision, total keys, total size and
version as etcdutl does; ``restore FILE --data-dir ... --name ... --initial-cluster ...
--initial-cluster-token ... --initial-advertise-peer-urls ... [--skip-hash-check]
[--bump-revision N --mark-compacted]``
writes a new member's data directory (``raftkv.server.restore``).

Exit codes: 0 done; 2 a bad flag or value; 3 storage trouble (the data dir exists, I/O);
4 the file is not an intact raftkv snapshot (hash mismatch, truncated, not SQLite, an
etcd bbolt file): one sentence on stderr, nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from raftkv.server.config import ConfigError, ServerConfig, parse_initial_cluster, parse_urls
from raftkv.server.maintenance import STORAGE_VERSION
from raftkv.storage.errors import StorageError
from raftkv.storage.snapfile import SnapshotFileError, SnapshotStatus, status

EXIT_USAGE = 2
EXIT_STORAGE = 3
EXIT_CORRUPT = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"raftkv snapshot: {message} (see raftkv snapshot --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raftkv snapshot", description="Inspect or restore a snapshot file "
                "saved with `etcdctl snapshot save` from a raftkv member.", allow_abbrev=False)
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    st = sub.add_parser("status", help="hash, revision, total keys and size of a snapshot")
    st.add_argument("file")
    st.add_argument("-w", "--write-out", default="simple", choices=["simple", "table", "json"])
    rs = sub.add_parser("restore", help="write a new member's data dir from a snapshot")
    rs.add_argument("file")
    a = rs.add_argument
    a("--data-dir", default=None, help="path to the data directory (default: ${name}.etcd)")
    a("--name", default="default", help="human-readable name for this member")
    a("--initial-cluster", default=None, help="name=peer-url,... of the restored cluster")
    a("--initial-cluster-token", default="etcd-cluster")
    a("--initial-advertise-peer-urls", default="http://localhost:2380")
    a("--skip-hash-check", action="store_true",
      help="ignore the snapshot's SHA-256 (a file copied from a data dir has none)")
    a("--bump-revision", type=int, default=0,
      help="how much to increase the latest revision after restore")
    a("--mark-compacted", action="store_true",
      help="mark the latest revision after restore as compacted (required if "
           "--bump-revision > 0, disallowed otherwise)")
    return p


def _human(n: int) -> str:
    """Bytes as etcdutl's humanize.Bytes (SI units)."""
    v = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if v < 1000 or unit == "TB":
            return f"{v:.0f} {unit}" if unit == "B" or v >= 10 else f"{v:.1f} {unit}"
        v /= 1000
    raise AssertionError("unreachable")


def render(s: SnapshotStatus, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"hash": s.hash, "revision": s.revision, "totalKey": s.total_key,
                           "totalSize": s.total_size, "version": s.version},
                          separators=(",", ":"))
    cells = [f"{s.hash:x}", str(s.revision), str(s.total_key), _human(s.total_size),
             s.version]
    if fmt == "simple":
        return ", ".join(cells)
    head = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"]
    widths = [max(len(h), len(c)) + 2 for h, c in zip(head, cells, strict=True)]
    line = "+" + "+".join("-" * w for w in widths) + "+"
    return "\n".join([line, "|" + "|".join(h.center(w) for h, w in zip(head, widths,
                                                                          strict=True)) + "|",
                      line, "|" + "|".join(f" {c} ".rjust(w) for c, w in zip(cells, widths,
                                                                              strict=True))
                      + "|", line])


def _restore_config(ns: argparse.Namespace) -> ServerConfig:
    peer = parse_urls("initial-advertise-peer-urls", ns.initial_advertise_peer_urls)
    cluster = (parse_initial_cluster(ns.initial_cluster) if ns.initial_cluster
               else {ns.name: peer})
    return ServerConfig(name=ns.name, data_dir=Path(ns.data_dir or f"{ns.name}.etcd"),
                        initial_advertise_peer_urls=peer, initial_cluster=cluster,
                        initial_cluster_token=ns.initial_cluster_token,
                        listen_peer_urls=peer)


def main(argv: list[str]) -> int:
    ns = build_parser().parse_args(argv)
    path = Path(ns.file)
    try:
        if not path.is_file():
            raise ConfigError(f"snapshot file {ns.file!r} does not exist")
        if ns.verb == "status":
            with tempfile.TemporaryDirectory(prefix="raftkv-snapshot-") as d:
                print(render(status(path, Path(d) / "db", STORAGE_VERSION), ns.write_out))
            return 0
        from raftkv.server.restore import restore

        if ns.bump_revision < 0:
            raise ConfigError("--bump-revision cannot be negative")
        if ns.bump_revision > 0 and not ns.mark_compacted:
            raise ConfigError("--mark-compacted required if --bump-revision > 0")
        if ns.mark_compacted and ns.bump_revision == 0:
            raise ConfigError("--mark-compacted disallowed if --bump-revision is 0")
        cfg = _restore_config(ns)
        restore(path, cfg, ns.skip_hash_check, ns.bump_revision)
        sys.stderr.write(f"restored snapshot {path} to {cfg.data_dir} (member {cfg.member_id:x}"
                         f", cluster {cfg.cluster_id:x})\n")
        return 0
    except ConfigError as exc:
        sys.stderr.write(f"raftkv snapshot: {exc}\n")
        return EXIT_USAGE
    except SnapshotFileError as exc:
        sys.stderr.write(f"raftkv snapshot: {exc}\n")
        return EXIT_CORRUPT
    except (StorageError, OSError) as exc:
        sys.stderr.write(f"raftkv snapshot: {exc}\n")
        return EXIT_STORAGE
