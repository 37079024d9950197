"""The recorded history: every client operation as an etcd-style transaction, with its outcome.

Every operation the workload issues (get, range, put, delete, compare-and-set, multi-key txn,
leased put) is recorded in one uniform shape, an :class:`Op`: value compares on keys, a
success branch and a failure branch of actions, and, once it returns, which branch ran, one
result per action of that branch, and the response's ``header.revision``. A plain get is a
txn with no compare and one ``get`` action, so the checkers need to understand one shape.

Invariants the workload keeps and the checkers rely on:

- every put writes a value never written before (``c<client>.<seq>[.<n>]``), so a read
  names the write it saw;
- inside a branch, reads come before writes, and no key is written twice;
- ``status`` is ``ok`` (response received), ``failed`` (an error proving the operation was
  not applied) or ``unknown`` (it may or may not have been applied, at any later time);
- ``invoke`` and ``complete`` are ``time.monotonic_ns()`` readings of one process; an
  unknown operation has ``complete = None``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.e2e.history.watchlog import WatchLog


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class KV:
    """One key as a read returned it."""

    key: str
    value: str
    mod_rev: int
    create_rev: int
    version: int
    lease: int = 0


@dataclass(frozen=True)
class Cmp:
    """``value(key) == expect``; ``expect=None`` means the key does not exist."""

    key: str
    expect: str | None


@dataclass(frozen=True)
class Act:
    """One action of a branch: ``get`` a key, ``range`` the whole keyspace, ``put``, ``del``."""

    kind: str  # "get" | "range" | "put" | "del"
    key: str = ""
    value: str = ""
    lease: int = 0

    @property
    def writes(self) -> bool:
        return self.kind in ("put", "del")


# A result per action: get -> KV | None; range -> list[KV]; put -> None; del -> deleted count.
Result = KV | list[KV] | int | None


@dataclass
class Op:
    """One client operation and what came back."""

    id: int
    client: int
    name: str  # what the workload called it: get, put, cas, txn2, ...
    invoke: int
    compares: list[Cmp] = field(default_factory=list)
    success: list[Act] = field(default_factory=list)
    failure: list[Act] = field(default_factory=list)
    serializable: bool = False
    endpoint: str = ""
    status: Status = Status.UNKNOWN
    complete: int | None = None
    revision: int = 0
    succeeded: bool = True
    results: list[Result] = field(default_factory=list)
    error: str = ""

    @property
    def branch(self) -> list[Act]:
        return self.success if self.succeeded else self.failure

    def touched_keys(self) -> set[str]:
        ks = {c.key for c in self.compares}
        ks.update(a.key for a in self.success + self.failure if a.kind != "range")
        return ks

    def may_write(self) -> bool:
        return any(a.writes for a in self.success + self.failure)

    def written_values(self) -> dict[str, tuple[str, Act]]:
        """Put values of either branch, mapped to (key, action): a read naming one found it."""
        return {a.value: (a.key, a) for a in self.success + self.failure if a.kind == "put"}

    def created_revision(self) -> bool:
        """For an ok op: did it make a new revision? (a put, or a delete that deleted)."""
        for act, res in zip(self.branch, self.results, strict=False):
            if act.kind == "put" or (act.kind == "del" and isinstance(res, int) and res > 0):
                return True
        return False

    def read_revision(self) -> int:
        """The revision an ok op's reads saw: before its own writes if it wrote."""
        return self.revision - 1 if self.created_revision() else self.revision

    def describe(self) -> str:
        def acts(xs: list[Act]) -> str:
            parts = []
            for a in xs:
                if a.kind == "put":
                    lease = f" lease={a.lease}" if a.lease else ""
                    parts.append(f"put {a.key}={a.value}{lease}")
                elif a.kind == "range":
                    parts.append("range *")
                else:
                    parts.append(f"{a.kind} {a.key}")
            return "; ".join(parts)

        head = f"#{self.id} c{self.client} {self.name}:"
        if self.compares:
            cmp = " and ".join(f"{c.key}=={c.expect!r}" for c in self.compares)
            body = f"if {cmp} then [{acts(self.success)}] else [{acts(self.failure)}]"
        else:
            body = acts(self.success)
        if self.serializable:
            body += " (serializable)"
        tail = f"-> {self.status}"
        if self.status is Status.OK:
            res = ", ".join(_fmt_result(r) for r in self.results)
            branch = "" if not self.compares else (" succeeded" if self.succeeded else " failed")
            tail += f"{branch} rev={self.revision} [{res}]"
        elif self.error:
            tail += f" ({self.error})"
        end = "?" if self.complete is None else f"{self.complete / 1e9:.3f}"
        when = f"t={self.invoke / 1e9:.3f}..{end}"
        return f"{head} {body} {tail} {when}"


def _fmt_result(r: Result) -> str:
    if r is None:
        return "-"
    if isinstance(r, KV):
        return f"{r.key}={r.value}@{r.mod_rev}"
    if isinstance(r, list):
        return "{" + " ".join(f"{kv.key}={kv.value}@{kv.mod_rev}" for kv in r) + "}"
    return f"deleted={r}"


@dataclass
class History:
    """All operations of one run, plus what produced them (seed, scenario, faults)."""

    ops: list[Op] = field(default_factory=list)
    seed: int = 0
    scenario: str = ""
    faults: list[str] = field(default_factory=list)
    watches: list[WatchLog] = field(default_factory=list)  # recorded watch streams, if any

    def ok(self) -> list[Op]:
        return [o for o in self.ops if o.status is Status.OK]

    def count(self, status: Status) -> int:
        return sum(1 for o in self.ops if o.status is status)

    def by_id(self) -> dict[int, Op]:
        return {o.id: o for o in self.ops}

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "scenario": self.scenario,
            "faults": self.faults,
            "ops": [asdict(o) for o in self.ops],
            "watches": [w.to_json() for w in self.watches],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))

    @staticmethod
    def load(path: Path) -> History:
        return History.from_json(json.loads(path.read_text()))

    @staticmethod
    def from_json(data: dict[str, Any]) -> History:
        ops = []
        for d in data["ops"]:
            ops.append(
                Op(
                    id=d["id"], client=d["client"], name=d["name"], invoke=d["invoke"],
                    compares=[Cmp(**c) for c in d["compares"]],
                    success=[Act(**a) for a in d["success"]],
                    failure=[Act(**a) for a in d["failure"]],
                    serializable=d["serializable"], endpoint=d["endpoint"],
                    status=Status(d["status"]), complete=d["complete"],
                    revision=d["revision"], succeeded=d["succeeded"],
                    results=[_result_from_json(r) for r in d["results"]], error=d["error"],
                )
            )
        from tests.e2e.history.watchlog import WatchLog  # watchlog imports this module

        return History(ops=ops, seed=data["seed"], scenario=data["scenario"],
                       faults=list(data["faults"]),
                       watches=[WatchLog.from_json(w) for w in data.get("watches", [])])


def _result_from_json(r: Any) -> Result:
    if isinstance(r, dict):
        return KV(**r)
    if isinstance(r, list):
        return [KV(**kv) for kv in r]
    return r  # type: ignore[no-any-return]
