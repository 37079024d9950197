"""Cluster membership as etcd keeps it: members with names and URLs, learners, removed IDs.

The list is part of the replicated state: it changes only when a configuration-change
entry is applied, it is stored in the backend (meta ``members``) in the same transaction
as the consistent index, and each conf change carries the member it adds as JSON in its
context (never pickle). Removed IDs are remembered so they are never re-admitted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


class MembershipError(ValueError):
    pass


@dataclass
class Member:
    id: int
    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Member:
        try:
            return cls.from_dict(json.loads(raw))
        except ValueError as exc:
            raise MembershipError(f"malformed member record: {exc}") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Member:
        try:
            m = cls(
                id=int(d["id"]),
                name=str(d.get("name", "")),
                peer_urls=[str(u) for u in d.get("peer_urls", [])],
                client_urls=[str(u) for u in d.get("client_urls", [])],
                is_learner=bool(d.get("is_learner", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MembershipError(f"malformed member record: {exc}") from None
        return m


@dataclass
class Membership:
    members: dict[int, Member] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    def member_dicts(self) -> list[dict[str, Any]]:
        return [asdict(m) for m in sorted(self.members.values(), key=lambda m: m.id)]

    def encode(self) -> bytes:
        return json.dumps({"members": self.member_dicts(),
                           "removed": sorted(self.removed)}).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Membership:
        if not raw:
            return cls()
        try:
            d = json.loads(raw)
            members = {int(m["id"]): Member.from_dict(m) for m in d.get("members", [])}
            return cls(members, {int(x) for x in d.get("removed", [])})
        except (ValueError, KeyError, TypeError) as exc:
            raise MembershipError(f"malformed membership record: {exc}") from None

    def peer_urls(self) -> dict[int, str]:
        return {m.id: m.peer_urls[0] for m in self.members.values() if m.peer_urls}

    def voters(self) -> list[Member]:
        return [m for m in self.members.values() if not m.is_learner]

    def by_peer_urls(self, urls: list[str]) -> Member | None:
        for m in self.members.values():
            if sorted(m.peer_urls) == sorted(urls):
                return m
        return None
