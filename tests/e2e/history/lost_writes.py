"""No acknowledged write lost, and replicas agree, judged on the final reads.

The final reads are ``range`` operations named ``final`` taken after every fault healed
(one linearizable, one serializable per member once all members reached one revision).
For every key and every final read at revision H, take the last acknowledged write to the
key at or before H (by its revision):

- a put at R: the key must be present with ``mod_rev >= R``, and if ``mod_rev == R`` with
  that put's value; or absent if a delete of the key, acknowledged or unknown, could have
  come after R;
- a delete at R: the key must be absent, or present with ``mod_rev > R``.

Final reads at the same revision must be identical (replicas converge).
"""

from __future__ import annotations

from tests.e2e.history.history import KV, History, Op, Status
from tests.e2e.history.verdict import Finding, Verdict


def _acked_writes(history: History) -> dict[str, list[tuple[int, Op, str | None]]]:
    """key -> [(revision, op, value or None for delete)] of acknowledged writes."""
    out: dict[str, list[tuple[int, Op, str | None]]] = {}
    for op in history.ok():
        if not op.created_revision():
            continue
        for act, res in zip(op.branch, op.results, strict=False):
            if act.kind == "put":
                out.setdefault(act.key, []).append((op.revision, op, act.value))
            elif act.kind == "del" and isinstance(res, int) and res > 0:
                out.setdefault(act.key, []).append((op.revision, op, None))
    for writes in out.values():
        writes.sort(key=lambda w: w[0])
    return out


def check(history: History) -> Verdict:
    verdict = Verdict("lost-writes")
    finals = [o for o in history.ok() if o.name == "final"]
    if not finals:
        verdict.inconclusive.append("no final read in the history")
        return verdict
    acked = _acked_writes(history)
    maybe_deleted = {a.key for o in history.ops if o.status is Status.UNKNOWN
                     for a in o.success + o.failure if a.kind == "del"}
    for fin in finals:
        res = fin.results[0]
        assert isinstance(res, list)
        state = {kv.key: kv for kv in res}
        for key, writes in acked.items():
            upto = [w for w in writes if w[0] <= fin.revision]
            if not upto:
                continue
            rev, op, value = upto[-1]
            kv = state.get(key)
            lost = False
            if value is not None:
                if kv is None:
                    later_delete = any(r > rev and v is None for r, _, v in writes)
                    lost = not later_delete and key not in maybe_deleted
                elif kv.mod_rev < rev or (kv.mod_rev == rev and kv.value != value):
                    lost = True
            elif kv is not None and kv.mod_rev <= rev:
                lost = True
            if lost:
                seen = "absent" if kv is None else f"{kv.value!r}@{kv.mod_rev}"
                verdict.findings.append(Finding(
                    "lost-write", f"{fin.endpoint or 'final read'} at revision {fin.revision} "
                    f"shows {key} {seen}, but #{op.id} acknowledged "
                    f"{'put ' + repr(value) if value is not None else 'delete'} at revision "
                    f"{rev} and nothing acknowledged later overwrote it",
                    key=key, revision=rev, ops=[op.id, fin.id]))
    by_rev: dict[int, tuple[Op, dict[str, KV]]] = {}
    for fin in finals:
        res = fin.results[0]
        assert isinstance(res, list)
        snapshot = {kv.key: kv for kv in res}
        if fin.revision in by_rev and by_rev[fin.revision][1] != snapshot:
            first = by_rev[fin.revision][0]
            diff = sorted(k for k in set(snapshot) | set(by_rev[fin.revision][1])
                          if snapshot.get(k) != by_rev[fin.revision][1].get(k))
            verdict.findings.append(Finding(
                "replicas-diverge", f"{first.endpoint} and {fin.endpoint} differ at revision "
                f"{fin.revision} on keys {diff}", revision=fin.revision, ops=[first.id, fin.id]))
        by_rev.setdefault(fin.revision, (fin, snapshot))
    verdict.stats["final_reads"] = len(finals)
    return verdict
