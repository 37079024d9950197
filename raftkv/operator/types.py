"""Values the scaling planner reads and returns: the observed cluster, steps and waits.

The planner (``raftkv.operator.planner``) is a pure function from :class:`Observed` to a
:data:`Plan`; these types carry no behaviour beyond naming and describing themselves.

Invariants:
- every value is frozen and hashable, so a plan can be compared, logged and replayed;
- a member's ``ordinal`` names it: it runs in pod ``<cluster>-<ordinal>`` with the volume
  claim ``<cluster>-<ordinal>``; the operator owns one pod and one claim per member (no
  StatefulSet), so any ordinal can be removed and ordinals need not be contiguous;
- ``healthy`` means the member's process runs, is reachable and would vote: a member
  whose data was lost (``data_lost``) or whose pod does not exist is never healthy;
- each :class:`Step` describes itself as one sentence naming the member it touches, and
  each :class:`Wait` carries a reason that a person can act on;
- times are whole Unix seconds and come in with the observation (``Observed.now``), so
  the planner reads no clock; ``Member.cert_not_after`` is None unless the operator
  issued the member's certificates itself (``spec.tls.mode: Auto``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Spec:
    """What the RaftCluster asks for: an odd number of voters on one image.

    ``renew_before`` (seconds) is set when the operator issues the members' certificates:
    a member whose certificates expire within it is restarted on renewed ones.
    """

    replicas: int
    image: str
    renew_before: int | None = None


@dataclass(frozen=True)
class Member:
    """One Raft member as the operator observed it."""

    ordinal: int
    id: int
    learner: bool
    healthy: bool
    raft_index: int
    image: str
    data_lost: bool = False
    cert_not_after: int | None = None  # the earliest expiry of the certificates its pod runs on

    @property
    def voter(self) -> bool:
        return not self.learner


@dataclass(frozen=True)
class Step:
    """One action on the cluster. Subclasses name their target; ``describe`` says it.

    The executor must make every step idempotent (check before acting: the planner may
    return the same step again after a restart that lost whether it ran).
    """

    def describe(self, cluster: str) -> str:
        raise NotImplementedError

    @property
    def changes_membership(self) -> bool:
        return False


@dataclass(frozen=True)
class Bootstrap(Step):
    """Start member 0 alone as a new single-member cluster (its claim and pod, state new)."""

    image: str

    def describe(self, cluster: str) -> str:
        return f"Bootstrap {cluster} with its first member {cluster}-0 on image {self.image}."


@dataclass(frozen=True)
class AddLearner(Step):
    """Add a non-voting member for this free ordinal (etcdctl member add --learner).

    Its pod is created next (a separate step, :class:`CreatePod`), with
    ``--initial-cluster-state=existing``: the process finds its new ID by its peer URL.
    """

    ordinal: int

    @property
    def changes_membership(self) -> bool:
        return True

    def describe(self, cluster: str) -> str:
        return f"Add {cluster}-{self.ordinal} as a learner."


@dataclass(frozen=True)
class PromoteLearner(Step):
    """Make a caught-up learner a voter (etcdctl member promote)."""

    ordinal: int
    member_id: int

    @property
    def changes_membership(self) -> bool:
        return True

    def describe(self, cluster: str) -> str:
        return f"Promote learner {cluster}-{self.ordinal} to a voter."


@dataclass(frozen=True)
class TransferLeadership(Step):
    """Move leadership to another voter (etcdctl move-leader)."""

    from_ordinal: int
    to_ordinal: int
    to_id: int

    def describe(self, cluster: str) -> str:
        return (f"Move leadership from {cluster}-{self.from_ordinal} "
                f"to {cluster}-{self.to_ordinal}.")


class RemovalCause(Enum):
    SCALE_DOWN = "scale-down"
    DATA_LOST = "data lost"
    EXTRA_CHANGE = "a second change in flight"


@dataclass(frozen=True)
class RemoveMember(Step):
    """Remove a member from the Raft configuration (etcdctl member remove)."""

    ordinal: int
    member_id: int
    cause: RemovalCause

    @property
    def changes_membership(self) -> bool:
        return True

    def describe(self, cluster: str) -> str:
        return f"Remove member {cluster}-{self.ordinal} ({self.cause.value})."


@dataclass(frozen=True)
class CreatePod(Step):
    """Create the pod (and its volume claim if absent) of a member that has no pod.

    A member with its claim restarts on its data and rejoins as itself; a learner without
    a claim starts empty and receives the leader's snapshot.
    """

    ordinal: int

    def describe(self, cluster: str) -> str:
        return f"Create pod {cluster}-{self.ordinal} for its member."


@dataclass(frozen=True)
class DeletePod(Step):
    """Delete the pod of an ordinal that no member uses any more (after a removal)."""

    ordinal: int

    def describe(self, cluster: str) -> str:
        return f"Delete pod {cluster}-{self.ordinal}, which no member uses."


@dataclass(frozen=True)
class DeleteVolumeClaim(Step):
    """Delete the volume claim of an ordinal that no pod and no member uses any more."""

    ordinal: int

    def describe(self, cluster: str) -> str:
        return f"Delete the volume claim of {cluster}-{self.ordinal}."


@dataclass(frozen=True)
class RollMember(Step):
    """Restart one member's pod on the spec's image: delete it, create it again, same claim."""

    ordinal: int
    image: str

    def describe(self, cluster: str) -> str:
        return f"Restart {cluster}-{self.ordinal} on image {self.image}."


@dataclass(frozen=True)
class RenewCertificates(Step):
    """Issue a member's server and peer certificates anew and restart its pod on them.

    Same claim and same image as before: only the certificates change. The executor
    skips issuing when the member's certificates are fresh already, and skips the restart
    when the pod runs on them already.
    """

    ordinal: int

    def describe(self, cluster: str) -> str:
        return f"Restart {cluster}-{self.ordinal} on renewed certificates."


class WaitKind(Enum):
    CONVERGED = "converged"      # nothing to do: the cluster matches the spec
    SETTLING = "settling"        # the last step has not taken full effect yet
    CATCHING_UP = "catching-up"  # a learner replicates the log before promotion
    BLOCKED = "blocked"          # a person must act: the reason says what


@dataclass(frozen=True)
class Wait:
    """No step now; ``reason`` is a sentence a person can act on."""

    reason: str
    kind: WaitKind


Plan = Step | Wait


@dataclass(frozen=True)
class Observed:
    """Everything the planner decides on.

    ``members`` is None when no member answered (nothing is known about membership).
    ``leader_id`` is the id of the leader the members report, or None.
    ``pods`` holds the ordinals that have a pod (in any phase, also terminating);
    ``claims`` the ordinals that have a volume claim.
    ``in_progress`` is the step the operator recorded before executing it, if any.
    ``now`` is when it observed, in Unix seconds (certificate renewal compares with it).
    ``pod_certs`` holds (ordinal, expiry) of the pods that run on the operator's own
    certificates, known even when no member answers.
    """

    cluster: str
    spec: Spec
    pods: frozenset[int]
    members: tuple[Member, ...] | None
    leader_id: int | None
    claims: frozenset[int] = frozenset()
    in_progress: Step | None = None
    now: int = 0
    pod_certs: tuple[tuple[int, int], ...] = ()
