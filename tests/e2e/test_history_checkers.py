"""The checkers accept valid histories and reject planted anomalies.

Each anomaly test builds the smallest history showing it and asserts which checker
flags it and with which finding; each has a valid twin that must pass, so a checker that
rejects everything fails here too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.e2e.history import linearizability, lost_writes, revisions
from tests.e2e.history.builder import Builder
from tests.e2e.history.checks import check_all, write_failure
from tests.e2e.history.history import KV, History, Op, Status
from tests.e2e.history.keyspace import Keyspace
from tests.e2e.history.verdict import Outcome


def kv(key: str, value: str, mod: int, create: int | None = None, ver: int = 1) -> KV:
    return KV(key, value, mod, create if create is not None else mod, ver)


# --- valid histories ----------------------------------------------------------------------

def test_sequential_history_passes_every_checker() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.get("a", kv("a", "v1", 2), 11, 20, rev=2)
    b.put("a", "v2", 21, 30, rev=3)
    b.cas("a", "v2", "v3", 31, 40, rev=4, succeeded=True)
    b.cas("a", "v2", "v4", 41, 50, rev=4, succeeded=False, seen=kv("a", "v3", 4, 2, 3))
    b.txn2("a", "v3", "v5", "b", "w1", 51, 60, rev=5, succeeded=True)
    b.delete("b", 61, 70, rev=6, deleted=1)
    b.range([kv("a", "v5", 5, 2, 4)], 71, 80, rev=6, name="final")
    report = check_all(b.history)
    assert report.ok, report.summary()


def test_concurrent_reads_may_see_either_side_of_a_concurrent_write() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "v2", 20, 50, rev=3)
    b.get("a", kv("a", "v2", 3, 2, 2), 25, 30, rev=3, client=1)
    b.get("a", kv("a", "v1", 2), 22, 60, rev=2, client=2)  # concurrent: invoked before
    assert linearizability.check(b.history).ok
    assert revisions.check(b.history).ok


def test_unknown_write_may_apply_later_or_never() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "lost", 11, 0, status=Status.UNKNOWN)  # never applied
    b.put("a", "late", 12, 0, status=Status.UNKNOWN, client=1)  # applied long after
    b.get("a", kv("a", "v1", 2), 100, 110, rev=2)
    b.get("a", kv("a", "late", 3, 2, 2), 200, 210, rev=3)
    b.range([kv("a", "late", 3, 2, 2)], 300, 310, rev=3, name="final")
    report = check_all(b.history)
    assert report.ok, report.summary()


def test_failed_write_is_never_applied() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "nope", 11, 0, status=Status.FAILED)
    b.get("a", kv("a", "nope", 3, 2, 2), 20, 30, rev=3)
    lin = linearizability.check(b.history)
    rev = revisions.check(b.history)
    assert not lin.ok and not rev.ok
    assert "failed-write-visible" in rev.kinds()


# --- planted anomalies --------------------------------------------------------------------

def test_stale_read_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "v2", 20, 30, rev=3)
    stale = b.get("a", kv("a", "v1", 2), 40, 50, rev=2, client=1)
    lin = linearizability.check(b.history)
    assert lin.outcome is Outcome.ANOMALY
    assert stale.id in lin.findings[0].ops
    rev = revisions.check(b.history)
    assert "revision-real-time" in rev.kinds()


def test_stale_read_with_a_current_header_is_flagged_by_replay() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "v2", 20, 30, rev=3)
    b.get("a", kv("a", "v1", 2), 40, 50, rev=3, client=1)  # claims rev 3, shows rev-2 value
    assert "stale-or-wrong-read" in revisions.check(b.history).kinds()


def test_lost_write_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    acked = b.put("b", "w1", 11, 20, rev=3)
    b.range([kv("a", "v1", 2)], 30, 40, rev=3, name="final")
    verdict = lost_writes.check(b.history)
    assert verdict.kinds() == {"lost-write"}
    assert acked.id in verdict.findings[0].ops
    assert not check_all(b.history).ok


def test_overwritten_write_is_not_lost() -> None:
    b = Builder()
    b.put("b", "w1", 11, 20, rev=2)
    b.delete("b", 21, 30, rev=3, deleted=1)
    b.put("a", "x", 31, 40, rev=4)
    b.range([kv("a", "x", 4)], 50, 60, rev=4, name="final")
    assert lost_writes.check(b.history).ok


def test_revision_running_backwards_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("b", "w1", 11, 20, rev=3)
    b.get("b", kv("b", "w1", 3), 21, 30, rev=3)
    b.get("a", kv("a", "v1", 2), 31, 40, rev=2, client=1)  # header went 3 -> 2
    verdict = revisions.check(b.history)
    assert "revision-real-time" in verdict.kinds()
    # the value itself is current, so per-key linearizability alone would not see it
    assert linearizability.check(b.history).ok


def test_write_revisions_running_backwards_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=3)
    b.put("b", "w1", 11, 20, rev=2)  # later write, lower revision
    assert "revision-real-time" in revisions.check(b.history).kinds()


def test_txn_that_saw_two_states_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("b", "w1", 11, 20, rev=3)
    b.txn2("a", "v1", "v2", "b", "w2", 21, 30, rev=4, succeeded=True)
    # a failed txn claims to read at revision 4 but its two gets come from two states:
    # a from revision 4 and b from revision 3
    b.txn2("a", "nope", "x", "b", "y", 31, 40, rev=4, succeeded=False,
           seen=(kv("a", "v2", 4, 2, 2), kv("b", "w1", 3)), client=1)
    verdict = revisions.check(b.history)
    assert "stale-or-wrong-read" in verdict.kinds()
    assert any(f.key == "b" for f in verdict.findings)


def test_cas_that_succeeded_on_a_wrong_value_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.cas("a", "other", "v2", 11, 20, rev=3, succeeded=True)
    assert not linearizability.check(b.history).ok
    assert "wrong-branch" in revisions.check(b.history).kinds()


def test_unknown_cas_applied_despite_false_compare_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.cas("a", "other", "v2", 11, 0, rev=0, succeeded=True, status=Status.UNKNOWN)
    b.get("a", kv("a", "v2", 3, 2, 2), 30, 40, rev=3)
    assert not linearizability.check(b.history).ok
    assert "wrong-branch" in revisions.check(b.history).kinds()


def test_two_writes_at_one_revision_are_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.put("b", "w1", 0, 10, rev=2, client=1)
    assert "duplicate-revision" in revisions.check(b.history).kinds()


def test_diverging_replicas_are_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.range([kv("a", "v1", 2)], 20, 30, rev=2, name="final")
    b.range([], 20, 30, rev=2, name="final", client=1)
    assert "replicas-diverge" in lost_writes.check(b.history).kinds()


def test_too_many_unknowns_is_inconclusive_not_ok() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    for i in range(5):
        b.delete("a", 11 + i, 0, rev=0, deleted=0, client=i + 1, status=Status.UNKNOWN)
    b.get("a", None, 100, 110, rev=3)
    verdict = linearizability.check(b.history, max_unknowns=3)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert linearizability.check(b.history, max_unknowns=8).ok


def test_failing_history_is_written_with_seed_and_explanation(tmp_path: Path) -> None:
    b = Builder(seed=1234, scenario="planted")
    b.put("a", "v1", 0, 10, rev=2)
    b.put("a", "v2", 20, 30, rev=3)
    b.get("a", kv("a", "v1", 2), 40, 50, rev=2)
    report = check_all(b.history, final=False)
    path = write_failure(b.history, report, tmp_path)
    doc = json.loads(path.read_text())
    assert doc["seed"] == 1234 and "--seed 1234" in doc["replay"]
    assert any("key" in e and e["key"] == "a" for e in doc["explanation"])
    assert any("#2" in line for line in doc["operations_named"])
    again = History.from_json(doc["history"])
    assert [o.describe() for o in again.ops] == [o.describe() for o in b.history.ops]


# --- randomized: a sequential register implementation always passes -----------------------

@pytest.mark.parametrize("seed", range(20))
def test_random_correct_histories_pass(seed: int) -> None:
    """Histories generated from a correct in-memory store (with concurrency windows and
    unknown outcomes) must pass; the seed is the test id, so ``-k "pass[7]"`` replays."""
    report = check_all(_random_correct_history(seed))
    assert report.ok, f"seed={seed}\n{report.summary()}"


@pytest.mark.parametrize("seed", range(10))
def test_random_histories_with_one_stale_read_fail(seed: int) -> None:
    """The same histories with one read turned stale (it returns an older value of its key
    at the older revision, after a newer write completed) must be rejected."""
    hist = _random_correct_history(seed)

    def older_write(read: Op) -> Op | None:
        kv_now = read.results[0]
        assert isinstance(kv_now, KV)
        older = [o for o in hist.ops if o.status is Status.OK and o.name in ("put", "cas")
                 and o.succeeded and kv_now.create_rev <= o.revision < kv_now.mod_rev
                 and o.success[0].key == kv_now.key]
        return older[-1] if older else None

    candidates = [(o, w) for o in hist.ops if o.name == "get" and isinstance(o.results[0], KV)
                  and (w := older_write(o)) is not None]
    assert candidates, f"seed={seed}: no read to make stale"
    victim, old = random.Random(seed).choice(candidates)
    kv_now = victim.results[0]
    assert isinstance(kv_now, KV)
    newer_done = max(o.complete or 0 for o in hist.ops
                     if o.status is Status.OK and o.revision >= kv_now.mod_rev
                     and o.name in ("put", "cas") and o.success[0].key == kv_now.key)
    victim.invoke = newer_done + 1
    victim.complete = max(victim.complete or 0, victim.invoke + 1)
    victim.results = [KV(kv_now.key, old.success[0].value, old.revision, kv_now.create_rev,
                         kv_now.version - 1)]
    victim.revision = old.revision
    # linearizability looks at values only, the real-time check at revisions only
    lin = linearizability.check(hist)
    assert lin.outcome is Outcome.ANOMALY, f"seed={seed}: stale read #{victim.id} missed"
    assert "revision-real-time" in revisions.check(hist).kinds(), f"seed={seed}"


def _random_correct_history(seed: int) -> History:
    rng = random.Random(seed)
    b = Builder(seed=seed, scenario="random-correct")
    model = Keyspace()
    rev = 1
    t = 0
    keys = ["a", "b", "c"]
    for i in range(120):
        t += rng.randint(1, 5)
        t0, t1 = t - rng.randint(0, 4), t + rng.randint(0, 4)  # overlap neighbours
        key = rng.choice(keys)
        kind = rng.random()
        cur = model.at(key, rev)
        if kind < 0.35:
            status = Status.UNKNOWN if rng.random() < 0.15 else Status.OK
            applied = status is Status.OK or rng.random() < 0.5
            if applied:
                rev += 1
                model.put(key, f"v{i}", rev)
            b.put(key, f"v{i}", t0, t1, rev=rev if applied else 0, status=status)
        elif kind < 0.45:
            if cur is None:
                b.delete(key, t0, t1, rev=rev, deleted=0)
            else:
                rev += 1
                model.delete(key, rev)
                b.delete(key, t0, t1, rev=rev, deleted=1)
        elif kind < 0.6:
            expect = cur.value if (cur and rng.random() < 0.6) else "zzz"
            if cur is not None and cur.value == expect:
                rev += 1
                model.put(key, f"v{i}", rev)
                b.cas(key, expect, f"v{i}", t0, t1, rev=rev, succeeded=True)
            else:
                b.cas(key, expect, f"v{i}", t0, t1, rev=rev, succeeded=False,
                      seen=cur.as_kv(key) if cur else None)
        else:
            b.get(key, cur.as_kv(key) if cur else None, t0, t1, rev=rev)
    b.range([st.as_kv(k) for k, st in sorted(model.keys_at(rev).items())], t + 10, t + 20,
            rev=rev, name="final")
    return b.history


def test_delete_that_missed_an_existing_key_is_flagged() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.delete("a", 20, 30, rev=2, deleted=0)
    assert "wrong-delete-count" in revisions.check(b.history).kinds()


def test_each_absent_read_needs_its_own_unknown_delete() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.delete("a", 11, 0, rev=0, deleted=0, client=1, status=Status.UNKNOWN)
    b.delete("a", 12, 0, rev=0, deleted=0, client=2, status=Status.UNKNOWN)
    b.get("a", None, 20, 30, rev=3)
    b.put("a", "v2", 40, 50, rev=4)
    b.get("a", None, 60, 70, rev=5)
    assert linearizability.check(b.history).ok
    # with only one unknown delete, the second absent read cannot be explained
    one = Builder()
    one.put("a", "v1", 0, 10, rev=2)
    one.delete("a", 11, 0, rev=0, deleted=0, client=1, status=Status.UNKNOWN)
    one.get("a", None, 20, 30, rev=3)
    one.put("a", "v2", 40, 50, rev=4)
    one.get("a", None, 60, 70, rev=5)
    assert linearizability.check(one.history).outcome is Outcome.ANOMALY


def test_unknown_delete_cannot_act_before_it_was_invoked() -> None:
    b = Builder()
    b.put("a", "v1", 0, 10, rev=2)
    b.get("a", None, 20, 30, rev=2)
    b.delete("a", 55, 0, rev=0, deleted=0, client=1, status=Status.UNKNOWN)
    b.get("a", None, 60, 70, rev=3)
    assert linearizability.check(b.history).outcome is Outcome.ANOMALY
