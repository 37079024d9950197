"""Errors the consensus core reports to its caller. Each is a distinct, catchable class."""


class RaftError(Exception):
    """Base of the core's errors."""


class ProposalDropped(RaftError):
    """The proposal was not appended (no leader, leadership transfer, pending change...)."""


class LearnerNotCaughtUp(ProposalDropped):
    """Promoting a learner whose log is not close enough to the leader's."""


class UncommittedSizeExceeded(ProposalDropped):
    """The leader's uncommitted entries already hold max_uncommitted_entries_size bytes."""


class Compacted(RaftError):
    """The requested index is below the first index still in the log (compacted away)."""


class Unavailable(RaftError):
    """The requested entries are not available (above the last index)."""


class SnapshotOutOfDate(RaftError):
    """The snapshot is older than the storage's current one."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now; the leader will retry."""
