"""Check recorded watch streams against the KV history of the same run.

Per watcher (all of its streams taken together, so a resumption after a kill is judged
like one stream):

- order: event revisions never go back; no (revision, key) twice (``duplicate``);
- atomicity: all events of one revision arrive in one response (``split-revision``),
  and they are exactly the writes of one operation (``partial-txn``, ``mixed-revision``);
- nothing invented: a put event names a value some operation wrote to that key and that
  was not proven unapplied; a delete event matches an acknowledged delete at that
  revision or a delete whose outcome is unknown; an acknowledged write shows up at the
  revision its response named (``wrong-revision``);
- completeness: from the watcher's start revision to the last revision it observed, every
  acknowledged write in its range appears (``missing``), and when every write of the run
  falls in its range, every revision appears (``gap``), except below a reported
  compaction;
- liveness: on the healed cluster each watcher reaches the final read's revision;
- values: replaying the events of all watchers revision by revision (watchers must agree
  on each revision, ``disagree``), each event's create revision and version, and its
  ``prev_kv`` when asked for, equal the key's state before that revision (``wrong-kv``,
  ``wrong-prev-kv``); after a revision no watcher saw, keys are unknown until written.

Revision 1 is a fresh cluster's empty store: the replay starts with every key absent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tests.e2e.history.history import KV, History, Op, Status
from tests.e2e.history.verdict import Finding, Verdict
from tests.e2e.history.watchlog import Event, WatchLog

Write = tuple[str, str, str]  # (kind, key, value); a delete's value is ""


@dataclass
class _Index:
    by_value: dict[str, Op]  # put value -> the op that may have written it
    by_rev: dict[int, Op]  # revision -> the acknowledged op that created it
    unknown_dels: dict[str, list[Op]]  # key -> deletes whose outcome is unknown
    written_keys: set[str]


def _expected(op: Op) -> set[Write]:
    """The writes an op makes if it applies (its branch when acknowledged)."""
    acts = op.branch if op.status is Status.OK else op.success
    res = op.results if op.status is Status.OK else [None] * len(acts)
    out: set[Write] = set()
    for act, r in zip(acts, res, strict=False):
        if act.kind == "put":
            out.add(("put", act.key, act.value))
        elif act.kind == "del" and (op.status is not Status.OK or (isinstance(r, int) and r)):
            out.add(("del", act.key, ""))
    return out


def _index(history: History) -> _Index:
    idx = _Index({}, {}, defaultdict(list), set())
    for op in history.ops:
        for act in op.success + op.failure:
            if act.kind == "put":
                idx.by_value[act.value] = op
            if act.writes:
                idx.written_keys.add(act.key)
                if act.kind == "del" and op.status is Status.UNKNOWN:
                    idx.unknown_dels[act.key].append(op)
        if op.status is Status.OK and op.created_revision():
            idx.by_rev[op.revision] = op
    return idx


def _write(ev: Event) -> Write:
    return (ev.kind, ev.kv.key, ev.kv.value if ev.kind == "put" else "")


def check(history: History) -> Verdict:
    v = Verdict("watch")
    if not history.watches:
        return v
    idx = _index(history)
    finals = [o.revision for o in history.ops if o.name == "final" and o.status is Status.OK]
    canonical: dict[int, dict[str, Event]] = {}
    for log in history.watches:
        _check_stream(log, idx, v)
        _check_coverage(log, idx, max(finals, default=0), v)
        _merge(log, canonical, v)
    _check_values(history.watches, canonical, v)
    v.stats.update(
        watches=len(history.watches),
        segments=sum(len(w.segments) for w in history.watches),
        resumes=sum(max(0, len(w.segments) - 1) for w in history.watches),
        events=sum(len(w.events()) for w in history.watches),
        revisions=len(canonical),
    )
    return v


def _check_stream(log: WatchLog, idx: _Index, v: Verdict) -> None:
    name = f"watch {log.id}"
    last_rev = 0
    last_resp: tuple[int, int] | None = None
    seen: set[tuple[int, str]] = set()
    by_rev: dict[int, list[Event]] = defaultdict(list)
    for si, ri, ev in log.events():
        r, key = ev.revision, ev.kv.key
        if (r, key) in seen:
            v.findings.append(Finding("duplicate", f"{name}: {ev.kind} of {key} at revision "
                                      f"{r} delivered twice (segment {si})", key, r))
        elif r < last_rev:
            v.findings.append(Finding("out-of-order", f"{name}: revision {r} after "
                                      f"{last_rev} (segment {si})", key, r))
        elif r == last_rev and last_resp != (si, ri):
            v.findings.append(Finding("split-revision", f"{name}: events of revision {r} in "
                                      "two responses", key, r))
        seg = log.segments[si]
        if seg.start_revision and r < seg.start_revision:
            v.findings.append(Finding("before-start", f"{name}: revision {r} on a stream "
                                      f"started at {seg.start_revision}", key, r))
        if not log.covers(key):
            v.findings.append(Finding("outside-range", f"{name}: event for {key} outside "
                                      f"[{log.key}, {log.range_end})", key, r))
        if ev.prev is not None and not log.prev_kv:
            v.findings.append(Finding("wrong-prev-kv", f"{name}: prev_kv sent unasked", key, r))
        seen.add((r, key))
        by_rev[r].append(ev)
        last_rev, last_resp = max(last_rev, r), (si, ri)
    for r, evs in by_rev.items():
        _check_revision(name, r, evs, idx, v)


def _check_revision(name: str, r: int, evs: list[Event], idx: _Index, v: Verdict) -> None:
    """The events of one revision are exactly the writes of one operation."""
    ops: dict[int, Op] = {}
    acked = idx.by_rev.get(r)
    if acked is not None:
        ops[acked.id] = acked
    for ev in evs:
        key = ev.kv.key
        if ev.kind == "put":
            op = idx.by_value.get(ev.kv.value)
            if op is None or op.status is Status.FAILED \
                    or ("put", key, ev.kv.value) not in _expected(op):
                why = "never written" if op is None else f"not applied: {op.describe()}"
                v.findings.append(Finding("invented", f"{name}: put {key}={ev.kv.value} at "
                                          f"revision {r}, {why}", key, r,
                                          [op.id] if op else []))
                continue
            if op.status is Status.OK and op.revision != r:
                v.findings.append(Finding("wrong-revision", f"{name}: put {key}="
                                          f"{ev.kv.value} at revision {r}, acknowledged at "
                                          f"{op.revision}", key, r, [op.id]))
            ops[op.id] = op
        elif acked is not None and ("del", key, "") in _expected(acked):
            continue
        elif idx.unknown_dels.get(key):
            if acked is None:
                ops.setdefault(-1, idx.unknown_dels[key][0])
        else:
            v.findings.append(Finding("invented", f"{name}: delete of {key} at revision {r} "
                                      "matches no delete", key, r))
    real = {i: o for i, o in ops.items() if i >= 0}
    if len(real) > 1:
        v.findings.append(Finding("mixed-revision", f"{name}: revision {r} holds writes of "
                                  f"{len(real)} operations", "", r, sorted(real)))
    elif len(real) == 1:
        (op,) = real.values()
        got = {_write(e) for e in evs}
        want = _expected(op)
        if op.status is not Status.OK:
            want = {w for w in want if w[0] == "put"} | {w for w in got if w[0] == "del"}
        if got != want:
            v.findings.append(Finding("partial-txn", f"{name}: revision {r} delivered "
                                      f"{sorted(got)}, its operation wrote {sorted(want)}",
                                      "", r, [op.id]))


def _span(log: WatchLog) -> tuple[int, int, list[tuple[int, int]]]:
    """(first revision it must show, last revision it observed, compacted ranges)."""
    start = log.segments[0].start_revision if log.segments else 0
    if not start:  # "now": from the first created response on (streams that never got
        # one were never in place, and the recorder kept asking for "now")
        created = [seg.created_revision for seg in log.segments
                   if not seg.start_revision and seg.created_revision]
        start = created[0] + 1 if created else 0
    evs = log.events()
    last = max((ev.revision for _, _, ev in evs), default=0)
    if not start:
        start = min((ev.revision for _, _, ev in evs), default=last + 1)
    excused = [(seg.start_revision, resp.compact_revision - 1) for seg in log.segments
               for resp in seg.responses if resp.compact_revision]
    return start, last, excused


def _check_coverage(log: WatchLog, idx: _Index, final: int, v: Verdict) -> None:
    name = f"watch {log.id}"
    start, last, excused = _span(log)
    observed = {ev.revision for _, _, ev in log.events()}
    dense = all(log.covers(k) for k in idx.written_keys)
    for r in range(max(start, 2), last + 1):
        if r in observed or any(a <= r <= b for a, b in excused):
            continue
        op = idx.by_rev.get(r)
        if op is not None and any(log.covers(k) for _, k, _ in _expected(op)):
            v.findings.append(Finding("missing", f"{name}: acknowledged write at revision {r} "
                                      f"never delivered ({op.describe()})", "", r, [op.id]))
        elif dense:
            v.findings.append(Finding("gap", f"{name}: revision {r} never delivered", "", r))
    if final and dense and last < final and start <= final:
        v.findings.append(Finding("stalled", f"{name}: last event at revision {last}, the "
                                  f"healed cluster is at {final}", "", final))


def _merge(log: WatchLog, canonical: dict[int, dict[str, Event]], v: Verdict) -> None:
    by_rev: dict[int, dict[str, Event]] = defaultdict(dict)
    for _, _, ev in log.events():
        by_rev[ev.revision][ev.kv.key] = ev
    for r, evs in by_rev.items():
        have = canonical.get(r)
        if have is None:
            canonical[r] = {k: Event(e.kind, e.kv) for k, e in evs.items()}
            continue
        mine = {_write(e) for e in evs.values()}
        theirs = {_write(e) for e in have.values()}
        if mine != theirs:
            v.findings.append(Finding("disagree", f"watch {log.id}: revision {r} is "
                                      f"{sorted(mine)}, another watcher saw {sorted(theirs)}",
                                      "", r))


def _check_values(logs: list[WatchLog], canonical: dict[int, dict[str, Event]],
                  v: Verdict) -> None:
    state: dict[str, KV | None] = {}
    all_absent = True  # revision 1: a fresh store holds nothing
    per_rev: dict[int, list[tuple[WatchLog, Event]]] = defaultdict(list)
    for log in logs:
        for _, _, ev in log.events():
            per_rev[ev.revision].append((log, ev))
    for r in range(2, max(canonical, default=1) + 1):
        evs = canonical.get(r)
        if evs is None:
            state.clear()
            all_absent = False
            continue
        after: dict[str, KV | None] = {}
        for key, ev in evs.items():  # the state each event must produce, from the model
            before = state.get(key)
            if ev.kind == "del" or (key not in state and not all_absent):
                after[key] = None if ev.kind == "del" else ev.kv
            else:
                after[key] = KV(key, ev.kv.value, r, before.create_rev if before else r,
                                before.version + 1 if before else 1, ev.kv.lease)
        for log, ev in per_rev[r]:
            key = ev.kv.key
            if key not in state and not all_absent:
                continue
            before = state.get(key)
            want = after.get(key)
            if ev.kind == "put" and want is not None and \
                    (ev.kv.create_rev, ev.kv.version) != (want.create_rev, want.version):
                v.findings.append(Finding(
                    "wrong-kv", f"watch {log.id}: put {key} at {r} has create "
                    f"{ev.kv.create_rev} version {ev.kv.version}, expected "
                    f"{want.create_rev}/{want.version}", key, r))
            elif ev.kind == "del" and before is None:
                v.findings.append(Finding("invented", f"watch {log.id}: delete of absent "
                                          f"{key} at revision {r}", key, r))
            if log.prev_kv and ev.prev != before:
                v.findings.append(Finding("wrong-prev-kv", f"watch {log.id}: {ev.kind} {key} "
                                          f"at {r}: prev_kv {ev.prev}, the key was {before}",
                                          key, r))
        state.update(after)
