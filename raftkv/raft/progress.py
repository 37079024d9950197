"""The leader's view of each follower: replication progress, flow control, and membership.

Invariants of :class:`Progress`: ``match < next``; in PROBE at most one append is in
flight per heartbeat interval; in REPLICATE appends are pipelined up to the in-flight
limits (count and bytes); in SNAPSHOT nothing is sent until the snapshot is acknowledged
or fails. :class:`ProgressTracker` holds the active configuration (voters and learners,
disjoint) and the votes of the current election.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from raftkv.raft import quorum
from raftkv.raft.types import ConfState


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """A bounded FIFO of the last indexes (and sizes) of appends sent but not acknowledged."""

    __slots__ = ("bytes", "max_bytes", "max_count", "queue")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.queue: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def add(self, index: int, size: int) -> None:
        self.queue.append((index, size))
        self.bytes += size

    def free_le(self, to: int) -> None:
        q = self.queue
        while q and q[0][0] <= to:
            self.bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        if self.queue:
            self.bytes -= self.queue.popleft()[1]

    def full(self) -> bool:
        return len(self.queue) >= self.max_count or (
            self.max_bytes > 0 and self.bytes >= self.max_bytes
        )

    def reset(self) -> None:
        self.queue.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.queue)


class Progress:
    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "msg_app_flow_paused",
        "next",
        "pending_snapshot",
        "recent_active",
        "snapshot_wait",
        "state",
    )

    def __init__(
        self, next_index: int, max_inflight: int, max_inflight_bytes: int, is_learner: bool = False
    ) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.snapshot_wait = 0  # ticks spent waiting on a snapshot acknowledgement
        self.recent_active = False
        self.msg_app_flow_paused = False
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return (
            f"{self.state.name} match={self.match} next={self.next}"
            + (" learner" if self.is_learner else "")
            + (f" paused inflight={len(self.inflights)}" if self.is_paused() else "")
            + (
                f" pendingSnap={self.pending_snapshot}"
                if self.state is ProgressState.SNAPSHOT
                else ""
            )
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.snapshot_wait = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def sent_entries(self, last_index: int, n_entries: int, size: int) -> None:
        """Record an append just sent, for flow control."""
        if self.state is ProgressState.REPLICATE:
            if n_entries:
                self.next = last_index + 1
                self.inflights.add(last_index, size)
            self.msg_app_flow_paused = self.inflights.full()
        elif self.state is ProgressState.PROBE:
            self.msg_app_flow_paused = True

    def maybe_update(self, n: int) -> bool:
        """An append was acknowledged up to ``n``. True if ``match`` moved."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.msg_app_flow_paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An append at ``rejected`` was refused; back ``next`` off using the follower's hint.

        Returns False for a stale rejection (one we have already acted on).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.msg_app_flow_paused
        if self.state is ProgressState.REPLICATE:
            return self.msg_app_flow_paused
        return True


class ProgressTracker:
    """The active configuration, every member's progress, and the current votes."""

    def __init__(self, max_inflight: int, max_inflight_bytes: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        prs = self.progress
        return quorum.committed_index(self.voters, lambda v: prs[v].match)

    def quorum_active(self) -> bool:
        prs = self.progress
        votes = {v: prs[v].recent_active for v in self.voters}
        return quorum.vote_result(self.voters, votes) is quorum.VoteResult.WON

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node: int, granted: bool) -> None:
        self.votes.setdefault(node, granted)

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        return Progress(next_index, self.max_inflight, self.max_inflight_bytes, is_learner)
