"""The revision-order checker, in the manner of etcd's robustness tests.

1. Place every write at its revision: an acknowledged write at its ``header.revision``; an
   unknown write at the ``mod_revision`` under which a read saw its (unique) value. Two
   operations at one revision, or a value seen under two revisions, are anomalies.
2. Replay the placed writes in revision order into a :class:`Keyspace`. For each write,
   its compares must evaluate, on the state just before it, to the branch it took (an
   unknown write that was applied must have had its compares hold), and its own reads
   and delete counts must match that state.
3. Every acknowledged read (get, range, txn branch reads) must equal the model at the
   revision it was served at (``header.revision``, or one less for a txn that wrote).
   Revisions with no placed write are gaps; a gap must be explained by an unknown write
   that no read revealed, and a key such a write may have touched is uncertain from the
   gap until its next placed write: reads of it there are not compared.
4. Real time: if A completed before B was invoked, B's revision is at least A's, and
   greater if B wrote.

Invariant: every finding names operation ids, a key or revision, and what was expected.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tests.e2e.history.history import KV, Act, History, Op, Status
from tests.e2e.history.keyspace import Keyspace, KeyState
from tests.e2e.history.verdict import Finding, Verdict


@dataclass
class Placement:
    rev_of: dict[int, int]  # op id -> revision of its writes
    branch_of: dict[int, bool]  # op id -> succeeded (branch whose writes were applied)
    writer_of: dict[str, tuple[Op, str]]  # put value -> (op, key)


def _reads(op: Op) -> list[tuple[Act, object]]:
    return [(a, r) for a, r in zip(op.branch, op.results, strict=False)
            if a.kind in ("get", "range")]


def place_writes(history: History, verdict: Verdict) -> Placement:
    writer_of: dict[str, tuple[Op, str]] = {}
    for op in history.ops:
        for value, (key, _act) in op.written_values().items():
            writer_of[value] = (op, key)
    rev_of: dict[int, int] = {}
    branch_of: dict[int, bool] = {}
    for op in history.ok():
        if op.created_revision():
            rev_of[op.id] = op.revision
            branch_of[op.id] = op.succeeded
    for op in history.ok():
        for _act, res in _reads(op):
            kvs = res if isinstance(res, list) else [res] if isinstance(res, KV) else []
            for kv in kvs:
                assert isinstance(kv, KV)
                found = writer_of.get(kv.value)
                if found is None:
                    verdict.findings.append(Finding(
                        "phantom-value", f"read returned {kv.key}={kv.value!r}, which no "
                        "operation wrote", key=kv.key, revision=kv.mod_rev, ops=[op.id]))
                    continue
                w, wkey = found
                if wkey != kv.key:
                    verdict.findings.append(Finding(
                        "wrong-key", f"read of {kv.key} returned the value #{w.id} wrote to "
                        f"{wkey}", key=kv.key, ops=[op.id, w.id]))
                    continue
                if w.status is Status.FAILED:
                    verdict.findings.append(Finding(
                        "failed-write-visible", f"read saw {kv.key}={kv.value} from a write "
                        "that failed (so was never applied)", key=kv.key,
                        revision=kv.mod_rev, ops=[op.id, w.id]))
                    continue
                placed = rev_of.get(w.id)
                if placed is None:
                    rev_of[w.id] = kv.mod_rev
                    branch_of[w.id] = any(a.kind == "put" and a.value == kv.value
                                          for a in w.success)
                elif placed != kv.mod_rev:
                    verdict.findings.append(Finding(
                        "revision-mismatch", f"read saw {kv.key}={kv.value} at mod_revision "
                        f"{kv.mod_rev}, but that write is at revision {placed}",
                        key=kv.key, revision=kv.mod_rev, ops=[op.id, w.id]))
    return Placement(rev_of, branch_of, writer_of)


def _holds(cmps: list[tuple[str, str | None]], model: Keyspace, rev: int) -> bool:
    for key, expect in cmps:
        st = model.at(key, rev)
        if (st.value if st else None) != expect:
            return False
    return True


class _Uncertainty:
    """Which keys an unrevealed unknown write may have changed, from which revision."""

    def __init__(self, gaps: list[int], keys: set[str], model: Keyspace) -> None:
        self.gaps = gaps
        self.keys = keys
        self.model = model

    def uncertain(self, key: str, rev: int) -> bool:
        if key not in self.keys or not self.gaps:
            return False
        last = self.model.last_write(key, rev)
        i = bisect.bisect_right(self.gaps, last)
        return i < len(self.gaps) and self.gaps[i] <= rev


def check(history: History) -> Verdict:
    verdict = Verdict("revision-order")
    pl = place_writes(history, verdict)
    ops = history.by_id()
    by_rev: dict[int, Op] = {}
    for oid, rev in sorted(pl.rev_of.items(), key=lambda x: x[1]):
        other = by_rev.get(rev)
        if other is not None and other.id != oid:
            verdict.findings.append(Finding(
                "duplicate-revision", f"two writes claim revision {rev}", revision=rev,
                ops=[other.id, oid]))
            continue
        by_rev[rev] = ops[oid]
    max_rev = max([o.revision for o in history.ok()] + list(by_rev), default=1)
    unrevealed = [o for o in history.ops if o.status is Status.UNKNOWN and o.may_write()
                  and o.id not in pl.rev_of]
    gaps = [r for r in range(2, max_rev + 1) if r not in by_rev]
    if len(gaps) > len(unrevealed):
        verdict.findings.append(Finding(
            "unexplained-revision", f"{len(gaps)} revisions have no write placed at them "
            f"(first {gaps[:5]}) but only {len(unrevealed)} unknown writes could explain them",
            revision=gaps[0]))
    model = Keyspace()
    maybe_keys = {a.key for o in unrevealed for a in o.success + o.failure if a.writes}
    unc = _Uncertainty(gaps, maybe_keys, model)

    # replay writes in revision order, checking each against the state before it
    for rev in sorted(by_rev):
        op = by_rev[rev]
        pre = rev - 1
        cmps = [(c.key, c.expect) for c in op.compares]
        cmp_keys_uncertain = any(unc.uncertain(k, pre) for k, _ in cmps)
        succeeded = pl.branch_of[op.id]
        if cmps and not cmp_keys_uncertain and _holds(cmps, model, pre) != succeeded:
            verdict.findings.append(Finding(
                "wrong-branch", f"{op.name} took the {'success' if succeeded else 'failure'} "
                f"branch at revision {rev}, but its compares were "
                f"{'false' if succeeded else 'true'} on the state before it",
                key=cmps[0][0], revision=rev, ops=[op.id]))
        branch = op.success if succeeded else op.failure
        if op.status is Status.OK:
            _check_reads(op, pre, model, unc, verdict)
            for act, res in zip(branch, op.results, strict=False):
                if act.kind == "del" and isinstance(res, int) and not unc.uncertain(act.key, pre):
                    existed = model.at(act.key, pre) is not None
                    if existed != (res > 0):
                        verdict.findings.append(Finding(
                            "wrong-delete-count", f"delete of {act.key} at revision {rev} "
                            f"reported deleted={res} but the key "
                            f"{'existed' if existed else 'was absent'}",
                            key=act.key, revision=rev, ops=[op.id]))
        for act in branch:
            if act.kind == "put":
                model.put(act.key, act.value, rev, act.lease,
                          exact=not unc.uncertain(act.key, pre))
            elif act.kind == "del":
                model.delete(act.key, rev)

    # reads of operations that did not write; deletes that deleted nothing
    for op in history.ok():
        if op.id in pl.rev_of and op.created_revision():
            continue
        _check_reads(op, op.revision, model, unc, verdict)
        for act, res in zip(op.branch, op.results, strict=False):
            if (act.kind == "del" and res == 0 and not unc.uncertain(act.key, op.revision)
                    and model.at(act.key, op.revision) is not None):
                verdict.findings.append(Finding(
                    "wrong-delete-count", f"delete of {act.key} reported deleted=0 at "
                    f"revision {op.revision}, but the key existed there",
                    key=act.key, revision=op.revision, ops=[op.id]))

    _check_real_time(history, pl, verdict)
    verdict.stats["placed_writes"] = len(by_rev)
    verdict.stats["gaps"] = len(gaps)
    return verdict


def _check_reads(op: Op, rev: int, model: Keyspace, unc: _Uncertainty, verdict: Verdict) -> None:
    for act, res in _reads(op):
        if act.kind == "get":
            got = res if isinstance(res, KV) else None
            _compare_key(op, act.key, rev, got, model, unc, verdict)
        else:
            assert isinstance(res, list)
            seen = {kv.key: kv for kv in res}
            keys = set(seen) | set(model.keys_at(rev))
            for key in sorted(keys):
                _compare_key(op, key, rev, seen.get(key), model, unc, verdict)


def _compare_key(op: Op, key: str, rev: int, got: KV | None, model: Keyspace,
                 unc: _Uncertainty, verdict: Verdict) -> None:
    if unc.uncertain(key, rev):
        return
    want: KeyState | None = model.at(key, rev)
    want_kv = want.as_kv(key) if want else None
    if want is not None and got is not None and not want.exact:
        got = KV(got.key, got.value, got.mod_rev, want.create_rev, want.version, got.lease)
    if got != want_kv:
        def fmt(kv: KV | None) -> str:
            if kv is None:
                return "absent"
            return f"{kv.value!r} (mod={kv.mod_rev} create={kv.create_rev} ver={kv.version})"

        verdict.findings.append(Finding(
            "stale-or-wrong-read", f"{op.name} read {key} at revision {rev} as {fmt(got)}, "
            f"but at that revision it is {fmt(want_kv)}", key=key, revision=rev, ops=[op.id]))


def _check_real_time(history: History, pl: Placement, verdict: Verdict) -> None:
    """If A completed before B was invoked, rev(B) >= rev(A) (+1 if B wrote)."""
    points: list[tuple[Op, int, bool]] = []  # op, revision, wrote
    for op in history.ops:
        if op.status is Status.OK:
            points.append((op, op.revision, op.created_revision()))
        elif op.id in pl.rev_of:
            points.append((op, pl.rev_of[op.id], True))
    done = sorted((p for p in points if p[0].complete is not None),
                  key=lambda p: p[0].complete or 0)
    j = 0
    best: tuple[Op, int] | None = None
    reported = 0
    for op, rev, wrote in sorted(points, key=lambda p: p[0].invoke):
        while j < len(done) and (done[j][0].complete or 0) < op.invoke:
            if best is None or done[j][1] > best[1]:
                best = (done[j][0], done[j][1])
            j += 1
        if best is None:
            continue
        need = best[1] + (1 if wrote else 0)
        if rev < need:
            reported += 1
            if reported <= 20:
                verdict.findings.append(Finding(
                    "revision-real-time", f"{op.name} was invoked after #{best[0].id} "
                    f"({best[0].name} at revision {best[1]}) completed, yet has revision {rev}"
                    f" (must be >= {need})", revision=rev, ops=[best[0].id, op.id]))
    if reported > 20:
        verdict.findings.append(Finding(
            "revision-real-time", f"... {reported - 20} more real-time violations"))
