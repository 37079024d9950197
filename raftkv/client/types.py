"""Plain values the client returns, decoupled from the protobuf messages.

Invariant: IDs are unsigned 64-bit integers exactly as etcd sends them (formatting as hex
is the caller's business); sizes are bytes; nothing here holds a grpc object.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EndpointStatus:
    """Maintenance.Status of one member, as answered by that member."""

    endpoint: str
    cluster_id: int
    member_id: int
    revision: int
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    is_learner: bool
    raft_term: int
    raft_index: int
    raft_applied_index: int
    errors: tuple[str, ...] = ()

    @property
    def is_leader(self) -> bool:
        """etcd's rule (etcdctl FindLeaderStatus): the member is the leader it names."""
        return self.leader != 0 and self.leader == self.member_id


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class MemberList:
    cluster_id: int
    member_id: int  # the member that answered
    raft_term: int
    members: tuple[Member, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Alarm:
    member_id: int
    alarm: str  # "NOSPACE", "CORRUPT"


@dataclass(frozen=True)
class ReadResult:
    """A Range on one key: the revision it read at."""

    revision: int
    count: int
