"""Recorded watch streams: what each watcher asked for and every response it received.

A :class:`WatchLog` is one logical watcher over the workload's keyspace. It may span
several gRPC streams (:class:`Segment`): when a stream breaks (its member killed, paused,
cut off), the watcher opens a new one on another member at ``last observed revision + 1``.
Each received response is kept whole (:class:`WatchResp`), so the checker can see which
events arrived together, in which order, on which segment.

Invariants the recorder keeps and the checker (``watch_check``) relies on:

- ``Segment.start_revision`` is exactly what the create request asked for (0 = "now");
  ``created_revision`` is the created response's ``header.revision`` (0 if none arrived);
- responses are in arrival order; an event's ``kv.mod_rev`` is the event's revision
  (a delete's kv carries the key and the deletion revision only);
- ``prev`` is set only when the server sent a ``prev_kv``;
- ``compact_revision`` is non-zero only when the server cancelled the watch as compacted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tests.e2e.history.history import KV


@dataclass(frozen=True)
class Event:
    kind: str  # "put" | "del"
    kv: KV
    prev: KV | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_rev


@dataclass
class WatchResp:
    header_revision: int
    events: list[Event] = field(default_factory=list)
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""


@dataclass
class Segment:
    """One gRPC Watch stream of a watcher."""

    endpoint: str
    start_revision: int
    created_revision: int = 0
    responses: list[WatchResp] = field(default_factory=list)
    error: str = ""  # why the stream ended, if it broke


@dataclass
class WatchLog:
    """One logical watcher: key range, options and its streams in order."""

    id: int
    key: str
    range_end: str
    prev_kv: bool
    segments: list[Segment] = field(default_factory=list)

    def covers(self, key: str) -> bool:
        if not self.range_end:
            return key == self.key
        return self.key <= key < self.range_end

    def events(self) -> list[tuple[int, int, Event]]:
        """(segment index, response index, event), in arrival order."""
        out: list[tuple[int, int, Event]] = []
        for si, seg in enumerate(self.segments):
            for ri, resp in enumerate(seg.responses):
                out.extend((si, ri, ev) for ev in resp.events)
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> WatchLog:
        segs = []
        for s in d["segments"]:
            resps = [WatchResp(
                header_revision=r["header_revision"],
                events=[Event(e["kind"], KV(**e["kv"]),
                              KV(**e["prev"]) if e["prev"] else None) for e in r["events"]],
                created=r["created"], canceled=r["canceled"],
                compact_revision=r["compact_revision"], cancel_reason=r["cancel_reason"],
            ) for r in s["responses"]]
            segs.append(Segment(s["endpoint"], s["start_revision"], s["created_revision"],
                                resps, s["error"]))
        return WatchLog(d["id"], d["key"], d["range_end"], d["prev_kv"], segs)
