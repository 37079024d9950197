"""Single-key linearizability by the Wing-Gong-Lowe search (the algorithm porcupine uses).

The history is projected onto each key (linearizability is local, so a projection of a
linearizable history is linearizable; a multi-key txn becomes, on each key, the part of
it that touches that key). Per key the state is the value, or ``None`` when absent.

Operations and their intervals:

- ``ok``: must take effect between invoke and complete, consistent with what it returned;
- ``failed``: dropped (it provably did not take effect);
- ``unknown`` reads: dropped (nothing observed); ``unknown`` writes may take effect at any
  time after their invoke, or never. Two sound reductions keep the search small: an
  unknown write whose outcome no later-completing read observed is dropped ("never" is
  always a valid choice for it), and one whose unique value some read saw must have
  taken effect, so it becomes required, with its completion bounded by the earliest
  completion of a read that saw it. What is left (unknown deletes some absent-read
  might need) is bounded by ``max_unknowns``; past the bound, or past ``max_states``
  explored, the key's verdict is inconclusive, never ok. Unknown plain deletes are
  interchangeable but for their invoke times, so the search only ever tries the
  earliest unused one (any linearization using others can be rearranged to use it).

Invariant: ``ok`` only if, for every key, a linearization exists that orders all required
operations inside their intervals and agrees with every observed result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tests.e2e.history.history import KV, Act, History, Op, Status
from tests.e2e.history.verdict import Finding, Verdict

State = str | None
Step = Callable[[State], list[State]]


@dataclass
class KeyOp:
    """One operation as seen by one key."""

    op: Op
    invoke: int
    ret: float  # math.inf: may take effect at any later time
    required: bool
    step: Step
    observes: list[State]  # values this op saw on the key (for pinning unknown writes)
    interchangeable: bool = False  # an unknown plain delete: any one serves as another


def _observed(act: Act, res: object, key: str) -> tuple[bool, State]:
    """Did this action read ``key``, and what value did it see?"""
    if act.kind == "get" and act.key == key:
        return True, res.value if isinstance(res, KV) else None
    if act.kind == "range" and isinstance(res, list):
        for kv in res:
            if kv.key == key:
                return True, kv.value
        return True, None
    return False, None


def _writes(branch: list[Act], key: str) -> tuple[bool, State]:
    out: tuple[bool, State] = (False, None)
    for a in branch:
        if a.key == key and a.kind == "put":
            out = (True, a.value)
        elif a.key == key and a.kind == "del":
            out = (True, None)
    return out


def project(op: Op, key: str) -> KeyOp | None:
    """The part of ``op`` that concerns ``key``, or None if nothing does."""
    if op.status is Status.FAILED:
        return None
    on_key = [c.expect for c in op.compares if c.key == key]
    others = any(c.key != key for c in op.compares)

    if op.status is Status.OK:
        branch = op.branch
        reads = []
        for act, res in zip(branch, op.results, strict=False):
            seen, val = _observed(act, res, key)
            if seen:
                reads.append(val)
        wrote, new = _writes(branch, key)
        if not on_key and not reads and not wrote:
            return None
        succeeded = op.succeeded

        def step_ok(state: State) -> list[State]:
            if on_key:
                holds = all(state == e for e in on_key)
                if succeeded and not holds:
                    return []
                if not succeeded and not others and holds:
                    return []
            if any(state != r for r in reads):
                return []
            return [new if wrote else state]

        observes = list(reads)
        if succeeded and on_key:
            observes += on_key
        assert op.complete is not None
        return KeyOp(op, op.invoke, float(op.complete), True, step_ok, observes)

    # unknown: only its writes matter, and only if some branch writes the key
    choices: list[tuple[bool | None, State]] = []  # (branch needs compare true/false, new)
    for branch, needs in ((op.success, True), (op.failure, False)):
        wrote, new = _writes(branch, key)
        if wrote:
            choices.append((needs, new))
    if not choices:
        return None

    def step_unknown(state: State) -> list[State]:
        out: list[State] = []
        for needs, new in choices:
            if on_key and not others:
                holds = all(state == e for e in on_key)
                if holds != needs:
                    continue
            elif on_key and needs and not all(state == e for e in on_key):
                continue
            out.append(new)
        return out

    plain_delete = not on_key and not others and choices == [(True, None)]
    return KeyOp(op, op.invoke, math.inf, False, step_unknown, [], plain_delete)


def key_ops(history: History, key: str) -> tuple[list[KeyOp], list[KeyOp]]:
    """Required and optional operations on ``key`` after the two reductions."""
    projected = [k for k in (project(o, key) for o in history.ops) if k is not None]
    known = [k for k in projected if k.required]
    kept: list[KeyOp] = []
    for u in (k for k in projected if not k.required):
        values = _unknown_outcomes(u.op, key)
        pin: float = math.inf
        seen_later = False
        for k in known:
            for v in values:
                if v in k.observes:
                    if v is not None:
                        pin = min(pin, k.ret)
                    elif k.ret > u.invoke:
                        seen_later = True
        if pin < math.inf:
            u.ret = max(pin, float(u.invoke))
            u.required = True
            known.append(u)
        elif seen_later:
            kept.append(u)
    return known, kept


def _unknown_outcomes(op: Op, key: str) -> set[State]:
    out: set[State] = set()
    for branch in (op.success, op.failure):
        wrote, new = _writes(branch, key)
        if wrote:
            out.add(new)
    return out


@dataclass
class SearchResult:
    ok: bool
    inconclusive: str = ""
    deepest: int = 0
    deepest_state: State = None
    stuck: list[KeyOp] | None = None
    states: int = 0


def search(ops: list[KeyOp], initial: State = None, max_states: int = 500_000) -> SearchResult:
    """Is there a linearization of the required ops (optional ones may be left out)?"""
    ops = sorted(ops, key=lambda k: (k.invoke, k.ret))
    n = len(ops)
    required = 0
    for i, k in enumerate(ops):
        if k.required:
            required |= 1 << i
    by_ret = sorted(range(n), key=lambda i: ops[i].ret)

    def children(mask: int, state: State) -> list[tuple[int, State]]:
        min_ret = math.inf
        for i in by_ret:
            if not (mask >> i) & 1:
                min_ret = ops[i].ret
                break
        out = []
        tried_delete = False
        for i in range(n):
            if ops[i].invoke > min_ret:
                break
            if (mask >> i) & 1:
                continue
            if ops[i].interchangeable:
                # unknown plain deletes differ only by invoke time: using the earliest
                # unused one is always at least as good, so try only that one
                if tried_delete:
                    continue
                tried_delete = True
            for s2 in ops[i].step(state):
                out.append((mask | (1 << i), s2))
        return out

    if required == 0:
        return SearchResult(ok=True)
    seen: set[tuple[int, State]] = set()
    stack = [iter(children(0, initial))]
    best, best_state, best_mask = 0, initial, 0
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        mask, state = nxt
        if mask & required == required:
            return SearchResult(ok=True, states=len(seen))
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        if len(seen) > max_states:
            return SearchResult(ok=False, inconclusive=f"search passed {max_states} states",
                                states=len(seen))
        depth = bin(mask & required).count("1")
        if depth > best:
            best, best_state, best_mask = depth, state, mask
        stack.append(iter(children(mask, state)))
    # not linearizable: report the pending required ops at the deepest point reached
    min_ret = min((ops[i].ret for i in range(n) if not (best_mask >> i) & 1 and ops[i].required),
                  default=math.inf)
    stuck = [ops[i] for i in range(n)
             if not (best_mask >> i) & 1 and ops[i].required and ops[i].invoke <= min_ret]
    return SearchResult(ok=False, deepest=best, deepest_state=best_state, stuck=stuck,
                        states=len(seen))


def check(history: History, max_unknowns: int = 40, max_states: int = 500_000) -> Verdict:
    """Check every key of ``history`` for linearizability."""
    verdict = Verdict("linearizability")
    keys = sorted({k for o in history.ops for k in o.touched_keys()})
    for key in keys:
        required, optional = key_ops(history, key)
        verdict.stats[f"ops[{key}]"] = len(required)
        if len(optional) > max_unknowns:
            verdict.inconclusive.append(
                f"key {key}: {len(optional)} unknown writes that reads may depend on "
                f"(bound {max_unknowns})")
            continue
        res = search(required + optional, max_states=max_states)
        if res.inconclusive:
            verdict.inconclusive.append(f"key {key}: {res.inconclusive}")
        elif not res.ok:
            stuck = res.stuck or []
            lines = "; ".join(k.op.describe() for k in stuck[:4])
            verdict.findings.append(Finding(
                kind="not-linearizable",
                message=(f"key {key}: after linearizing {res.deepest} operations the value is "
                         f"{res.deepest_state!r}, and no pending operation can come next: {lines}"),
                key=key,
                ops=[k.op.id for k in stuck],
            ))
    return verdict
