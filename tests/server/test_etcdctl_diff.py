"""Differential test: the same etcdctl 3.5.1 commands, in the same order, against raftkv
and against real etcd 3.5.1. Everything must be equal except member and cluster IDs and
raft terms: keys, values, revisions, versions, counts, ``more``, header revisions, and
error codes and messages.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.support.etcd import Cluster, etcd_bin

pytestmark = pytest.mark.slow  # real raftkv processes

BIG = "v" * (1536 * 1024 + 10)  # just over --max-request-bytes (1.5 MiB)

TXN_CAS_OK = 'value("a") = "1"\n\nput a 10\nget a\n\nput a 0\n\n'
TXN_CAS_FAIL = 'value("a") = "1"\n\nput a 11\n\nget a\nget b\n\n'
TXN_MULTI = 'mod("b") > "0"\nversion("c") = "1"\n\nput b 20\ndel c\nget b --prefix\n\n\n'
TXN_DUP = "\nput x 1\nput x 2\n\n\n"
TXN_TOO_MANY = "\n" + "".join(f"put k{i} v\n" for i in range(129)) + "\n\n"
TXN_RANGE_CMP = 'create("k", "l") > "0"\n\nget k --prefix --count-only\n\nput nope 1\n\n'

# (args, stdin) in order; revisions depend on everything before them
SCRIPT: list[tuple[list[str], str | None]] = [
    (["put", "a", "1"], None),
    (["put", "b", "2"], None),
    (["put", "c", "3"], None),
    (["put", "a", "1"], None),
    (["put", "d", "4", "--prev-kv"], None),
    (["put", "d", "5", "--prev-kv"], None),
    (["get", "a"], None),
    (["get", "a", "d"], None),
    (["get", "", "--prefix"], None),
    (["get", "", "--from-key"], None),
    (["get", "a", "--prefix", "--limit=1"], None),
    (["get", "", "--prefix", "--limit=2"], None),
    (["get", "", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"], None),
    (["get", "", "--prefix", "--sort-by=VERSION", "--order=ASCEND", "--limit=2"], None),
    (["get", "", "--prefix", "--sort-by=VALUE", "--order=DESCEND"], None),
    (["get", "", "--prefix", "--sort-by=CREATE", "--order=ASCEND"], None),
    (["get", "", "--prefix", "--keys-only"], None),
    (["get", "", "--prefix", "--count-only"], None),
    (["get", "a", "--rev=2"], None),
    (["get", "a", "--rev=1"], None),
    (["get", "", "--prefix", "--min-mod-revision=3"], None),
    (["get", "", "--prefix", "--max-mod-revision=3", "--limit=1"], None),
    (["get", "", "--prefix", "--min-create-revision=2", "--max-create-revision=4"], None),
    (["get", "a", "--rev=1000"], None),
    (["get", "zzz"], None),
    (["put", "a", "--ignore-value"], None),
    (["put", "zzz", "--ignore-value"], None),
    (["put", "a", "1", "--ignore-lease"], None),
    (["endpoint", "status"], None),
    (["txn"], TXN_CAS_OK),
    (["txn"], TXN_CAS_FAIL),
    (["txn"], TXN_MULTI),
    (["txn"], TXN_RANGE_CMP),
    (["txn"], TXN_DUP),
    (["txn"], TXN_TOO_MANY),
    (["put", "big"], BIG),
    (["del", "zzz"], None),
    (["del", "b", "--prev-kv"], None),
    (["put", "p/1", "x"], None),
    (["put", "p/2", "y"], None),
    (["del", "p/", "--prefix", "--prev-kv"], None),
    (["compaction", "5"], None),
    (["get", "a", "--rev=4"], None),
    (["get", "a", "--rev=5"], None),
    (["compaction", "5"], None),
    (["compaction", "3"], None),
    (["compaction", "1000"], None),
    (["compaction", "--physical", "8"], None),
    (["get", "", "--prefix"], None),
]

IGNORED = {"cluster_id", "member_id", "raft_term"}


def _normalize(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _normalize(v) for k, v in x.items() if k not in IGNORED}
    if isinstance(x, list):
        return [_normalize(v) for v in x]
    return x


def run_script(c: Cluster) -> list[tuple[int, Any, str]]:
    env = {**os.environ, "ETCDCTL_API": "3"}
    out = []
    for args, stdin in SCRIPT:
        argv = [str(etcd_bin("etcdctl")), f"--endpoints={','.join(c.endpoints)}",
                "--command-timeout=10s"]
        if args[0] in ("put", "get", "del", "txn", "endpoint"):
            argv.append("-w=json")
        p = subprocess.run([*argv, *args], input=stdin, capture_output=True, text=True,
                           env=env, timeout=60)
        body: Any = p.stdout.strip()
        if body.startswith("{"):
            body = _normalize(json.loads(body))
        elif args[0] == "endpoint" and body.startswith("["):
            # DB size, raft index and version legitimately differ (etcd applies entries of
            # its own); the revision each member reports must not.
            body = sorted((e["Status"]["header"]["revision"], e["Status"].get("isLearner", False),
                           e["Status"].get("errors", [])) for e in json.loads(body))
        # etcdctl's stderr has timestamps and addresses; its last line is the error
        err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        out.append((p.returncode, body, err))
    return out


def test_etcdctl_sees_the_same_results(raftkv3: Cluster, etcd3: Cluster) -> None:
    ours = run_script(raftkv3)
    theirs = run_script(etcd3)
    diffs = []
    for (args, _), a, b in zip(SCRIPT, ours, theirs, strict=True):
        if a != b:
            diffs.append(f"etcdctl {' '.join(args)}\n  raftkv: {a}\n  etcd:   {b}")
    assert not diffs, f"{len(diffs)} of {len(SCRIPT)} commands differ:\n" + "\n".join(diffs)
    # the script must exercise errors too, or it proves little
    assert sum(1 for rc, _, _ in theirs if rc != 0) >= 6
