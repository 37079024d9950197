"""The status-code differences between raftkv and etcd 3.6.16 that the fuzzer accepts.

Every entry names the method, what raftkv answers, what etcd answers and why the
difference is accepted. Anything else that differs fails the differential run. Two
outcomes are the same when their gRPC codes are equal and, if both messages are etcd's
own (``etcdserver: ...``), their messages are equal too; transport messages (gRPC's
"received message larger than max") are library text and only their codes are compared.

Where etcd is right, raftkv answers as etcd does and there is no entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fuzz.runner import Outcome


@dataclass(frozen=True)
class Difference:
    method: str
    raftkv: str  # a code, or "CODE: message" (the message must match exactly)
    etcd: str  # a code, "CODE: message", or "*" for any outcome
    reason: str
    when: Callable[[Any], bool] | None = None  # a condition on the request, if any

    def matches(self, method: str, request: Any, ours: Outcome, theirs: Outcome) -> bool:
        return (method == self.method and _matches(self.raftkv, ours)
                and (self.etcd == "*" or _matches(self.etcd, theirs))
                and (self.when is None or self.when(request)))


def _matches(pattern: str, o: Outcome) -> bool:
    code, _, message = pattern.partition(": ")
    return o.code == code and (not message or o.details == message)


ACCEPTED: list[Difference] = [
    Difference(
        "Txn", "INVALID_ARGUMENT: etcdserver: invalid compare option", "*",
        "etcd 3.6.16 does not validate Compare.result/target: an undefined result compares "
        "true, an undefined target compares against 0; raftkv refuses both before "
        "proposing (raftkv/server/validate.py). The stream puts undefined compare enums "
        "only into txns that cannot write, so the keyspaces stay equal."),
    Difference(
        "Alarm", "FAILED_PRECONDITION: etcdserver: alarms are raised by the server itself",
        "OK",
        "etcd replicates client-activated alarms; raftkv's alarms are raised by the server "
        "itself (NOSPACE, member-local, by its quota check; CORRUPT, replicated, by the "
        "corruption check), so a client cannot activate one. The stream deactivates every "
        "alarm it activates in the next op."),
    Difference(
        "Compact", "OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted",
        "OK",
        "Compact(revision 0) on a never-compacted store: etcd's compactMainRev starts at -1, "
        "so it accepts a compaction to 0 once (a no-op); raftkv's compacted revision starts "
        "at 0 and answers 'compacted'. Revision 0 holds no data.",
        when=lambda r: r.revision == 0),
]


def same(ours: Outcome, theirs: Outcome) -> bool:
    if ours.code != theirs.code:
        return False
    if ours.details.startswith("etcdserver:") and theirs.details.startswith("etcdserver:"):
        return ours.details == theirs.details
    return True


def accepted(method: str, request: Any, ours: Outcome, theirs: Outcome) -> Difference | None:
    return next((d for d in ACCEPTED if d.matches(method, request, ours, theirs)), None)
