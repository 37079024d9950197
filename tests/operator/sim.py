"""A small model of a raftkv cluster on Kubernetes, for testing the planner against.

The model is written independently of the planner: it decides for itself who is healthy,
who leads, when a learner may be promoted (as etcd: at 90% of the leader's log) and what
each step does to pods, members and claims. Tests drive it with the planner's steps and
with faults, and check the invariants on the model's state, not on the planner's view.

Invariants of the model itself:
- the operator owns one pod and one claim per member, any ordinal; a member is healthy
  only if its pod exists, its process is up and its data is intact;
- Kubernetes refuses what would destroy a member: deleting the pod or the claim of an
  ordinal that still has a member (the model refuses it, so the tests catch a planner
  that asks for it); a claim in use by a pod is protected;
- membership changes (add, promote, remove) take effect only while a leader exists;
- a new pod runs the spec's image (the StatefulSet template follows the spec);
- with ``cert_lifetime`` set (the operator's own certificates), a pod starts on its
  member's certificates, issued anew when absent or due (as the executor does), and a
  member whose certificates have expired is unhealthy (its peers refuse it); ``now``
  advances ``tick_seconds`` per tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkv.operator.types import (
    AddLearner,
    Bootstrap,
    CreatePod,
    DeletePod,
    DeleteVolumeClaim,
    Member,
    Observed,
    Plan,
    PromoteLearner,
    RemoveMember,
    RenewCertificates,
    RollMember,
    Spec,
    Step,
    TransferLeadership,
)

STARTUP_TICKS = 1  # a new or restarted pod is down this many ticks
ROLL_TICKS = 2


@dataclass
class SimMember:
    ordinal: int
    id: int
    learner: bool
    raft_index: int = 0
    crashed: bool = False
    data_lost: bool = False
    starting: int = 0  # ticks until the process is up after a pod (re)start
    cert_not_after: int | None = None


@dataclass
class World:
    cluster: str
    spec: Spec
    pods: dict[int, str] = field(default_factory=dict)  # ordinal -> image of the pod
    members: dict[int, SimMember] = field(default_factory=dict)
    leader: int | None = None  # ordinal
    claims: set[int] = field(default_factory=set)
    commit: int = 0
    next_id: int = 0x1000
    now: int = 0
    tick_seconds: int = 0
    cert_lifetime: int | None = None

    # --- state the tests check ------------------------------------------------------

    def healthy(self, m: SimMember) -> bool:
        return (m.ordinal in self.pods and not m.crashed and not m.data_lost
                and m.starting == 0 and not self.expired(m))

    def expired(self, m: SimMember) -> bool:
        return m.cert_not_after is not None and m.cert_not_after <= self.now

    def voters(self) -> list[SimMember]:
        return [m for m in self.members.values() if not m.learner]

    def healthy_voters(self) -> list[SimMember]:
        return [m for m in self.voters() if self.healthy(m)]

    def quorate(self) -> bool:
        v = len(self.voters())
        return v > 0 and len(self.healthy_voters()) >= v // 2 + 1

    def has_leader(self) -> bool:
        return (self.leader is not None and self.leader in self.members
                and self.healthy(self.members[self.leader])
                and not self.members[self.leader].learner and self.quorate())

    def caught_up(self, m: SimMember) -> bool:
        """etcd's rule for promoting a learner: its log is at 90% of the leader's."""
        assert self.leader is not None
        return m.raft_index * 10 >= self.members[self.leader].raft_index * 9

    def in_flight(self) -> int:
        """Membership changes begun and not finished: learners, and removals whose pod or
        claim is not yet deleted."""
        learners = sum(1 for m in self.members.values() if m.learner)
        pods = sum(1 for o in self.pods if o not in self.members)
        claims = sum(1 for o in self.claims if o not in self.members and o not in self.pods)
        return learners + pods + claims

    def converged(self) -> bool:
        r = self.spec.replicas
        return (
            len(self.members) == r
            and all(not m.learner and self.healthy(m) for m in self.members.values())
            and self.claims == set(self.members) == set(self.pods)
            and all(image == self.spec.image for image in self.pods.values())
        )

    # --- what the operator sees ---------------------------------------------------------

    def observe(self, in_progress: Step | None) -> Observed:
        if not any(self.healthy(m) for m in self.members.values()):
            members: tuple[Member, ...] | None = None
        else:
            members = tuple(
                Member(
                    ordinal=m.ordinal,
                    id=m.id,
                    learner=m.learner,
                    healthy=self.healthy(m),
                    raft_index=m.raft_index,
                    image=self.pods.get(m.ordinal, ""),
                    # as the operator sees it: a voter whose claim is gone lost its data
                    data_lost=m.data_lost or (not m.learner and m.ordinal not in self.claims),
                    cert_not_after=m.cert_not_after,
                )
                for m in sorted(self.members.values(), key=lambda m: m.ordinal)
            )
        leader_id = None
        if self.has_leader() and self.leader is not None:
            leader_id = self.members[self.leader].id
        return Observed(
            cluster=self.cluster,
            spec=self.spec,
            pods=frozenset(self.pods),
            members=members,
            leader_id=leader_id,
            claims=frozenset(self.claims),
            in_progress=in_progress,
            now=self.now,
            pod_certs=tuple((o, m.cert_not_after) for o, m in sorted(self.members.items())
                            if o in self.pods and m.cert_not_after is not None),
        )

    # --- time -----------------------------------------------------------------------

    def tick(self) -> None:
        self.now += self.tick_seconds
        for m in self.members.values():
            if m.starting > 0 and m.ordinal in self.pods:
                m.starting -= 1
        if not self.has_leader():
            self.leader = None
            if self.quorate():
                best = max(self.healthy_voters(), key=lambda m: (m.raft_index, -m.ordinal))
                self.leader = best.ordinal
        if self.has_leader():
            self.commit += 3
            for m in self.members.values():
                if self.healthy(m):
                    m.raft_index = min(self.commit, m.raft_index + 40)
            assert self.leader is not None
            self.members[self.leader].raft_index = self.commit

    # --- faults ---------------------------------------------------------------------

    def crash(self, ordinal: int) -> None:
        if ordinal in self.members:
            self.members[ordinal].crashed = True

    def recover(self, ordinal: int) -> None:
        if ordinal in self.members:
            self.members[ordinal].crashed = False

    def lose_data(self, ordinal: int) -> None:
        if ordinal in self.members:
            self.members[ordinal].data_lost = True
            self.members[ordinal].raft_index = 0

    # --- steps ------------------------------------------------------------------------

    def execute(self, step: Plan) -> None:
        """Carry out a step the way the operator's executor would, idempotently."""
        if isinstance(step, Bootstrap):
            if not self.pods and not self.members:
                self.pods[0] = step.image
                self.claims.add(0)
                self.members[0] = SimMember(0, self._new_id(), learner=False,
                                            starting=STARTUP_TICKS)
                self._start_on_certs(self.members[0])
                self.leader = None
        elif isinstance(step, AddLearner):
            if (self.has_leader() and step.ordinal not in self.members
                    and step.ordinal not in self.pods):
                self.members[step.ordinal] = SimMember(step.ordinal, self._new_id(),
                                                       learner=True)
        elif isinstance(step, CreatePod):
            if step.ordinal not in self.pods:
                self.pods[step.ordinal] = self.spec.image
                self.claims.add(step.ordinal)
                if step.ordinal in self.members:
                    self.members[step.ordinal].starting = STARTUP_TICKS
                    self._start_on_certs(self.members[step.ordinal])
        elif isinstance(step, DeletePod):
            if step.ordinal not in self.members:  # a member's pod is never deleted for good
                self.pods.pop(step.ordinal, None)
        elif isinstance(step, PromoteLearner):
            learner = self.members.get(step.ordinal)
            if (self.has_leader() and learner is not None and learner.learner
                    and self.healthy(learner) and self.caught_up(learner)):
                learner.learner = False
        elif isinstance(step, TransferLeadership):
            to = self.members.get(step.to_ordinal)
            if (self.has_leader() and self.leader == step.from_ordinal and to is not None
                    and not to.learner and self.healthy(to)):
                self.leader = to.ordinal
        elif isinstance(step, RemoveMember):
            if self.has_leader() and step.ordinal in self.members:
                del self.members[step.ordinal]
                if self.leader == step.ordinal:
                    self.leader = None
        elif isinstance(step, DeleteVolumeClaim):
            # a claim in use by a pod is protected; a member's data is never deleted
            if step.ordinal not in self.pods and step.ordinal not in self.members:
                self.claims.discard(step.ordinal)
        elif isinstance(step, RollMember):
            if step.ordinal in self.pods:
                self.pods[step.ordinal] = step.image
                if step.ordinal in self.members:
                    self.members[step.ordinal].starting = ROLL_TICKS
                    self.members[step.ordinal].crashed = False
                    self._start_on_certs(self.members[step.ordinal])
        elif isinstance(step, RenewCertificates):
            m = self.members.get(step.ordinal)
            if step.ordinal in self.pods and m is not None and self.cert_lifetime is not None:
                m.cert_not_after = self.now + self.cert_lifetime
                m.starting, m.crashed = ROLL_TICKS, False
        else:
            raise AssertionError(f"not a step: {step!r}")

    def _start_on_certs(self, m: SimMember) -> None:
        """A pod starts on its member's certificates, issued anew if absent or due."""
        if self.cert_lifetime is None or self.spec.renew_before is None:
            return
        if m.cert_not_after is None or m.cert_not_after - self.now <= self.spec.renew_before:
            m.cert_not_after = self.now + self.cert_lifetime

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id


@dataclass
class Operator:
    """The operator's loop around the pure planner. Its only memory is ``in_progress``,
    which it records (in the RaftCluster status) before executing a step."""

    in_progress: Step | None = None

    def restart(self, keep_record: bool) -> None:
        """A restart loses everything but the recorded step, and maybe that too."""
        if not keep_record:
            self.in_progress = None
