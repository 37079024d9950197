"""Property tests of the planner against the cluster model in ``sim``.

Two families, both derandomized (a failure prints its example and replays exactly):
- generated cluster states, any health, data loss, in-flight leftovers and recorded step:
  one planner call, its step executed on the model, invariants checked;
- generated sequences of faults (crash, recovery, data loss), spec changes, operator
  restarts (with or without the recorded step) and crashes between recording and
  executing a step, each followed by one operator iteration; then all crashes heal and
  the cluster must reach the spec.

Invariants checked at every planner call (on the model, not on the planner's view):
- a step is issued only with a healthy voter quorum and a leader, and a healthy voter
  quorum remains right after it is executed; the one exception is restoring the pod of a
  volume claim (a member restarting on its data), which needs no quorum;
- at most one membership change is in flight (never more than before, when a generated
  start already had more);
- the leader is never removed or restarted;
- every step takes effect on the model (the model refuses what etcd or Kubernetes would:
  promoting a learner that has not caught up, deleting a claim a pod uses, ...);
- a healthy voter is removed only while every remaining voter is healthy, and a member
  is restarted only while every other member is healthy;
- without a healthy voter quorum the answer is a wait; a wait carries no action, asking
  again unchanged gives the same wait, and its reason is a sentence naming what to look at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.operator.planner import plan
from raftkv.operator.types import (
    AddLearner,
    Bootstrap,
    CreatePod,
    DeletePod,
    DeleteVolumeClaim,
    Plan,
    PromoteLearner,
    RemovalCause,
    RemoveMember,
    RollMember,
    Spec,
    Step,
    TransferLeadership,
    Wait,
    WaitKind,
)
from tests.operator.sim import Operator, SimMember, World

IMAGES = ("raftkv:0.1.0", "raftkv:0.2.0")
SETTINGS = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
MANY = settings(SETTINGS, max_examples=1500)
SEQUENCES = settings(SETTINGS, max_examples=400)
SENTENCE = re.compile(r"^[A-Z`].{20,}[.]$", re.DOTALL)


# --- generated states ---------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn, *, all_healthy: bool = False) -> World:
    """A cluster in any state the operator could find: possibly mid-change, damaged, or new."""
    spec = Spec(draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from(IMAGES)))
    w = World("demo", spec)
    if draw(st.booleans()) and draw(st.booleans()):
        # Nothing runs yet; claims may remain from a deleted cluster (never bootstrap then).
        if not all_healthy:
            w.claims = draw(st.sets(st.integers(0, 8), max_size=2))
        return w
    pod_ordinals = draw(st.sets(st.integers(0, 8), min_size=1, max_size=8))
    w.pods = {o: draw(st.sampled_from(IMAGES)) for o in pod_ordinals}
    if all_healthy:
        ordinals = draw(st.sets(st.sampled_from(sorted(pod_ordinals)), min_size=1))
    else:
        ordinals = draw(st.sets(st.integers(0, 8), min_size=1, max_size=8))
    w.commit = draw(st.integers(0, 500))
    for o in sorted(ordinals):
        learner = draw(st.booleans()) if draw(st.booleans()) else False
        m = SimMember(o, 0x100 + o, learner=learner)
        m.raft_index = (draw(st.integers(0, w.commit)) if learner
                        else max(0, w.commit - draw(st.integers(0, 3))))
        if not all_healthy:
            m.crashed = draw(st.integers(0, 4)) == 0
            m.data_lost = draw(st.integers(0, 7)) == 0
            m.starting = draw(st.sampled_from([0, 0, 0, 1]))
        w.members[o] = m
    if not w.voters():
        first = min(w.members)
        w.members[first].learner = False
    extra = draw(st.sets(st.integers(0, 8), max_size=3))
    w.claims = set(pod_ordinals) | (set() if all_healthy else extra)
    w.next_id = 0x1000
    w.tick()  # elect a leader if the model can
    return w


steps = st.one_of(
    st.none(),
    st.builds(Bootstrap, st.sampled_from(IMAGES)),
    st.builds(AddLearner, st.integers(0, 8)),
    st.builds(PromoteLearner, st.integers(0, 8), st.integers(0x100, 0x108)),
    st.builds(RemoveMember, st.integers(0, 8), st.integers(0x100, 0x108),
              st.sampled_from(RemovalCause)),
    st.builds(CreatePod, st.integers(0, 8)),
    st.builds(DeletePod, st.integers(0, 8)),
    st.builds(DeleteVolumeClaim, st.integers(0, 8)),
    st.builds(RollMember, st.integers(0, 8), st.sampled_from(IMAGES)),
    st.builds(TransferLeadership, st.integers(0, 8), st.integers(0, 8),
              st.integers(0x100, 0x108)),
)


# --- the invariants -----------------------------------------------------------------


def snapshot(w: World) -> tuple[object, ...]:
    return (dict(w.pods), {o: (m.learner, m.crashed, m.data_lost, m.starting)
                                  for o, m in w.members.items()}, w.leader, set(w.claims))


def check_and_execute(w: World, op: Operator, p: Plan, *, execute: bool = True) -> None:
    """Check one planner result against the model, then carry it out."""
    in_flight_before, quorate_before = w.in_flight(), w.quorate()
    if isinstance(p, Wait):
        assert SENTENCE.match(p.reason), f"not a sentence: {p.reason!r}"
        if p.kind is not WaitKind.CONVERGED:
            assert "demo" in p.reason, f"names no member or cluster: {p.reason!r}"
        # A wait carries no action; asking again without a change must wait again, so a
        # looping operator does nothing until the cluster or the spec changes.
        assert plan(w.observe(op.in_progress)) == p, "a repeated question got another answer"
        if p.kind is WaitKind.CONVERGED:
            op.in_progress = None
        return
    assert isinstance(p, Step)
    assert SENTENCE.match(p.describe("demo"))
    if isinstance(p, Bootstrap):
        assert not w.members and not w.pods and not w.claims, "bootstrap over an existing cluster"
    elif isinstance(p, CreatePod) and (p.ordinal in w.claims or not w.quorate()):
        # restoring a pod on its data: allowed without quorum, never for a lost member
        assert p.ordinal in w.claims and p.ordinal not in w.pods
        m = w.members.get(p.ordinal)
        if any(w.healthy(x) for x in w.members.values()):  # else nothing can be known
            assert m is None or not m.data_lost, f"{p} restarts a member whose data is lost"
    else:
        assert w.quorate(), f"{p} issued without a healthy voter quorum"
        assert w.has_leader(), f"{p} issued without a leader"
        if isinstance(p, (RemoveMember, RollMember)):
            assert p.ordinal != w.leader, f"{p} acts on the leader"
        others = [m for o, m in w.members.items() if o != getattr(p, "ordinal", None)]
        if isinstance(p, RemoveMember) and p.ordinal in w.members:
            leaving = w.members[p.ordinal]
            if not leaving.learner and w.healthy(leaving):
                assert all(w.healthy(m) for m in others if not m.learner), (
                    f"{p} removes a healthy voter while a remaining voter is unhealthy")
        if isinstance(p, RollMember):
            assert all(w.healthy(m) for m in others), (
                f"{p} restarts a member while another one is down")
    op.in_progress = p  # recorded before executing, as the operator does
    if not execute:
        return
    before = snapshot(w)
    w.execute(p)
    assert snapshot(w) != before, f"{p} had no effect: the model refused it"
    if not isinstance(p, Bootstrap) and quorate_before:
        assert w.quorate(), f"{p} left no healthy voter quorum"
    assert w.in_flight() <= max(1, in_flight_before), (
        f"{p} started a second membership change ({w.in_flight()} in flight)")


def converge(w: World, op: Operator, limit: int = 150) -> Plan:
    """Run the operator loop without faults until it waits converged (or give up)."""
    p: Plan = Wait("Not started yet.", WaitKind.BLOCKED)
    for _ in range(limit):
        p = plan(w.observe(op.in_progress))
        check_and_execute(w, op, p)
        if isinstance(p, Wait) and p.kind is WaitKind.CONVERGED:
            return p
        w.tick()
    return p


def assert_reached(w: World, p: Plan) -> None:
    single_voter_upgrade = (
        w.spec.replicas == 1 and isinstance(p, Wait) and "single voter" in p.reason
    )
    if single_voter_upgrade:  # documented: restarting the only voter needs downtime
        assert len(w.members) == 1 and not next(iter(w.members.values())).learner
        return
    assert isinstance(p, Wait) and p.kind is WaitKind.CONVERGED, f"stuck at: {p}"
    assert w.converged(), f"planner says converged but the model is not: {w}"


# --- properties over single states ----------------------------------------------------


@MANY
@given(worlds(), steps)
def test_any_state_one_step_is_safe(w: World, recorded: Step | None) -> None:
    op = Operator(in_progress=recorded)
    obs = w.observe(op.in_progress)
    p = plan(obs)
    assert plan(obs) == p, "the planner is not deterministic"
    if not w.quorate() and w.members:
        assert isinstance(p, Wait | CreatePod), "a step without a healthy quorum"
    check_and_execute(w, op, p)


@MANY
@given(worlds(all_healthy=True), steps)
def test_target_reached_from_any_healthy_start(w: World, recorded: Step | None) -> None:
    op = Operator(in_progress=recorded)
    assert_reached(w, converge(w, op))


# --- properties over sequences ---------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str
    ordinal: int = 0
    flag: bool = False
    replicas: int = 3
    image: str = IMAGES[0]


# Weighted by repetition: mostly quiet time and spec changes, some faults.
events = st.one_of(
    *[st.just(Event("tick"))] * 3,
    *[st.builds(Event, st.just("spec"), replicas=st.sampled_from([1, 3, 5, 7]),
                image=st.sampled_from(IMAGES))] * 3,
    *[st.builds(Event, st.just("crash"), st.integers(0, 7))] * 2,
    *[st.builds(Event, st.just("recover"), st.integers(0, 7))] * 2,
    st.builds(Event, st.just("lose-data"), st.integers(0, 7)),
    st.builds(Event, st.just("restart"), flag=st.booleans()),
    st.just(Event("crash-before-execute")),
)


def apply_event(w: World, op: Operator, e: Event) -> bool:
    """Apply a fault or spec change; True when the next step must not be executed."""
    if e.kind == "crash":
        w.crash(e.ordinal)
    elif e.kind == "recover":
        w.recover(e.ordinal)
    elif e.kind == "lose-data":
        w.lose_data(e.ordinal)
    elif e.kind == "restart":
        op.restart(keep_record=e.flag)
    elif e.kind == "spec":
        w.spec = Spec(e.replicas, e.image)
    return e.kind == "crash-before-execute"


@SEQUENCES
@given(
    st.sampled_from([1, 3, 5]),
    st.lists(st.tuples(st.integers(0, 6), events), min_size=5, max_size=60),
)
def test_sequences_with_faults_restarts_and_spec_changes(
    start_replicas: int, script: list[tuple[int, Event]]
) -> None:
    w = World("demo", Spec(start_replicas, IMAGES[0]))
    op = Operator()
    assert_reached(w, converge(w, op))  # a healthy cluster of start_replicas to begin with
    for quiet, e in script:
        skip = apply_event(w, op, e)
        p = plan(w.observe(op.in_progress))
        if not w.quorate():
            assert isinstance(p, Wait | CreatePod), f"{p} issued while the model has no quorum"
        check_and_execute(w, op, p, execute=not skip)
        if skip:
            op.restart(keep_record=True)  # it crashed after recording the step
        for _ in range(quiet + 1):
            w.tick()
    # Heal every crash; members whose data is lost stay lost (the planner replaces them).
    for o in list(w.members):
        w.recover(o)
    lost_voters = [m for m in w.voters() if m.data_lost]
    if len(w.voters()) - len(lost_voters) < len(w.voters()) // 2 + 1 or not w.members:
        p = plan(w.observe(op.in_progress))
        assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
        return  # a majority lost its data: only a restore from backup helps
    assert_reached(w, converge(w, op))
