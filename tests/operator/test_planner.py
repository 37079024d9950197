"""Scripted planner examples: the exact steps of each kind of change, and the waits.

The property tests prove the invariants broadly; these pin the order of steps the
issue asks for (learner before its pod, remove before deleting the pod before the claim,
followers before the leader) and the sentences people read.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from raftkv.operator import planner
from raftkv.operator.planner import plan
from raftkv.operator.quorum import disruption_budget, pdb_max_unavailable, quorum
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
    RemovalCause,
    RemoveMember,
    RollMember,
    Spec,
    Step,
    TransferLeadership,
    Wait,
    WaitKind,
)
from raftkv.operator.view import View
from tests.operator.sim import Operator, World

V1, V2 = "raftkv:0.1.0", "raftkv:0.2.0"


def healthy_cluster(replicas: int, image: str = V1, leader: int = 0) -> World:
    w = World("demo", Spec(replicas, image))
    op = Operator()
    for _ in range(100):
        p = plan(w.observe(op.in_progress))
        if isinstance(p, Wait) and p.kind is WaitKind.CONVERGED:
            break
        if isinstance(p, Step):
            w.execute(p)
        w.tick()
    assert w.converged()
    if leader != w.leader:
        w.leader = leader
    return w


def steps_until_converged(w: World, limit: int = 100) -> list[Plan]:
    """Run the operator loop; return every step and every non-converged wait."""
    op, seen = Operator(), list[Plan]()
    for _ in range(limit):
        p = plan(w.observe(op.in_progress))
        if isinstance(p, Wait) and p.kind is WaitKind.CONVERGED:
            return seen
        seen.append(p)
        if isinstance(p, Step):
            op.in_progress = p
            w.execute(p)
        w.tick()
    raise AssertionError(f"did not converge: {seen[-5:]}")


def only_steps(plans: list[Plan]) -> list[Step]:
    return [p for p in plans if isinstance(p, Step)]


def test_empty_cluster_bootstraps_one_member() -> None:
    obs = Observed("demo", Spec(3, V1), pods=frozenset(), members=None, leader_id=None)
    assert plan(obs) == Bootstrap(V1)


def test_claims_without_pods_get_their_pods_back_before_anything_else() -> None:
    obs = Observed("demo", Spec(3, V1), pods=frozenset({1}), members=None, leader_id=None,
                   claims=frozenset({0, 1, 2}))
    assert plan(obs) == CreatePod(0)


def test_no_member_answering_with_pods_waits_and_names_a_pod() -> None:
    obs = Observed("demo", Spec(3, V1), pods=frozenset({1, 2}), members=None, leader_id=None,
                   claims=frozenset({1, 2}))
    p = plan(obs)
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert "`kubectl logs demo-1`" in p.reason


def test_scale_up_adds_learner_then_pod_then_promotes_one_at_a_time() -> None:
    w = healthy_cluster(1)
    w.spec = Spec(3, V1)
    assert only_steps(steps_until_converged(w)) == [
        AddLearner(1), CreatePod(1), PromoteLearner(1, w.members[1].id),
        AddLearner(2), CreatePod(2), PromoteLearner(2, w.members[2].id),
    ]


def test_scale_down_removes_followers_then_their_pods_then_their_claims() -> None:
    w = healthy_cluster(3, leader=2)
    ids = {o: m.id for o, m in w.members.items()}
    w.spec = Spec(1, V1)
    assert only_steps(steps_until_converged(w)) == [
        RemoveMember(1, ids[1], RemovalCause.SCALE_DOWN), DeletePod(1), DeleteVolumeClaim(1),
        RemoveMember(0, ids[0], RemovalCause.SCALE_DOWN), DeletePod(0), DeleteVolumeClaim(0),
    ]
    assert sorted(w.members) == [2]  # any member can be removed, not only the highest


def test_scale_down_to_one_from_the_leader_moves_leadership_first() -> None:
    w = healthy_cluster(3, leader=0)
    w.spec = Spec(1, V1)
    w.crash(1)  # down: removed first
    ids = {o: m.id for o, m in w.members.items()}
    assert plan(w.observe(None)) == RemoveMember(1, ids[1], RemovalCause.SCALE_DOWN)


def test_scale_up_reuses_the_lowest_free_ordinal() -> None:
    w = healthy_cluster(3, leader=2)
    w.spec = Spec(1, V1)
    steps_until_converged(w)
    w.spec = Spec(3, V1)
    steps = only_steps(steps_until_converged(w))
    assert [s for s in steps if isinstance(s, AddLearner)] == [AddLearner(0), AddLearner(1)]


def test_upgrade_rolls_followers_first_and_the_leader_last_after_a_transfer() -> None:
    w = healthy_cluster(3, leader=1)
    w.spec = Spec(3, V2)
    steps = only_steps(steps_until_converged(w))
    assert steps[:2] == [RollMember(2, V2), RollMember(0, V2)]
    transfer = steps[2]
    assert isinstance(transfer, TransferLeadership) and transfer.from_ordinal == 1
    assert transfer.to_ordinal in (0, 2)  # to a follower already on the new image
    assert steps[3:] == [RollMember(1, V2)]


def test_member_that_lost_its_data_is_removed_and_added_back_as_learner() -> None:
    w = healthy_cluster(3, leader=0)
    old_id = w.members[1].id
    w.lose_data(1)
    steps = only_steps(steps_until_converged(w))
    assert steps == [
        RemoveMember(1, old_id, RemovalCause.DATA_LOST), DeletePod(1), DeleteVolumeClaim(1),
        AddLearner(1), CreatePod(1), PromoteLearner(1, w.members[1].id),
    ]
    assert w.members[1].id != old_id


def test_pod_and_claim_deleted_is_healed_by_a_fresh_member() -> None:
    w = healthy_cluster(3, leader=1)
    old_id = w.members[0].id
    del w.pods[0]
    w.claims.discard(0)
    steps = only_steps(steps_until_converged(w))
    assert steps == [
        RemoveMember(0, old_id, RemovalCause.DATA_LOST),
        AddLearner(0), CreatePod(0), PromoteLearner(0, w.members[0].id),
    ]


def test_pod_deleted_with_its_claim_kept_is_restarted_as_itself() -> None:
    w = healthy_cluster(3, leader=1)
    old_id = w.members[2].id
    del w.pods[2]
    assert only_steps(steps_until_converged(w)) == [CreatePod(2)]
    assert w.members[2].id == old_id


def test_pods_restored_even_without_quorum() -> None:
    w = healthy_cluster(3, leader=1)
    del w.pods[0]
    del w.pods[2]
    assert not w.quorate()
    assert plan(w.observe(None)) == CreatePod(0)


def test_learner_catching_up_is_a_wait_with_its_progress() -> None:
    w = healthy_cluster(3)
    w.spec = Spec(5, V1)
    w.execute(AddLearner(3))
    w.execute(CreatePod(3))
    w.members[3].starting = 0
    w.commit = w.members[0].raft_index = 1000
    p = plan(w.observe(None))
    assert p == Wait(
        "Learner demo-3 is catching up: raft index 0 of the leader's 1000; it is promoted "
        "at 90%. If it stops moving, check its disk and its network to the leader.",
        WaitKind.CATCHING_UP,
    )


def test_quorum_lost_waits_and_names_the_members_to_bring_back() -> None:
    w = healthy_cluster(3)
    w.spec = Spec(5, V1)
    w.crash(1)
    w.crash(2)
    p = plan(w.observe(None))
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert p.reason.startswith("Quorum lost: only 1 of 3 voters are healthy and 2 are needed. "
                               "Bring demo-1 and demo-2 back")


def test_scale_down_removes_the_unhealthy_member_first() -> None:
    w = healthy_cluster(5)
    w.spec = Spec(3, V1)
    w.crash(1)
    assert plan(w.observe(None)) == RemoveMember(1, w.members[1].id, RemovalCause.SCALE_DOWN)


def test_upgrade_refused_while_a_member_is_down() -> None:
    w = healthy_cluster(3, leader=0)
    w.spec = Spec(3, V2)
    w.execute(RollMember(2, V2))
    w.crash(2)  # the new image does not start
    w.members[2].starting = 0
    p = plan(w.observe(None))
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert p.reason.startswith("Upgrade to raftkv:0.2.0 is paused: demo-2 is not healthy")


def test_single_voter_upgrade_waits_with_advice() -> None:
    w = healthy_cluster(1)
    w.spec = Spec(1, V2)
    p = plan(w.observe(None))
    assert p == Wait(
        "RaftCluster demo has a single voter, so restarting demo-0 on image raftkv:0.2.0 "
        "would stop the cluster; scale it to 3 replicas first, then change the image.",
        WaitKind.BLOCKED,
    )


def test_recorded_roll_waits_for_the_member_to_come_back() -> None:
    w = healthy_cluster(3, leader=0)
    w.spec = Spec(3, V2)
    w.execute(RollMember(2, V2))
    p = plan(w.observe(RollMember(2, V2)))
    assert isinstance(p, Wait) and p.kind is WaitKind.SETTLING
    assert p.reason.startswith("Waiting for demo-2 to come back on image raftkv:0.2.0")


def _member(o: int, *, healthy: bool = True, learner: bool = False) -> Member:
    return Member(o, 100 + o, learner=learner, healthy=healthy, raft_index=50, image=V1)


def test_guard_refuses_a_step_that_would_leave_no_quorum() -> None:
    """The last line of defence: even a step a rule got wrong is re-checked."""
    members = (_member(0), _member(1), _member(2, healthy=False))
    obs = Observed("demo", Spec(3, V1), frozenset({0, 1, 2}), members, leader_id=100,
                   claims=frozenset({0, 1, 2}))
    view = View.of(obs)
    p = planner._guarded(view, RemoveMember(1, 101, RemovalCause.SCALE_DOWN))
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert p.reason.startswith("Not doing it yet: to remove member demo-1 (scale-down) would "
                               "leave 1 of 2 voters healthy, fewer than the quorum of 2.")
    # ... and acting on the leader becomes a leadership transfer first.
    assert planner._guarded(view, RollMember(0, V2)) == TransferLeadership(0, 1, 101)
    assert planner._guarded(view, AddLearner(3)) == AddLearner(3)


@pytest.mark.parametrize(("voters", "max_unavailable", "needed"),
                         [(1, 0, 1), (2, 0, 2), (3, 1, 2), (4, 1, 3), (5, 2, 3), (7, 3, 4)])
def test_pdb_counts_voters_only(voters: int, max_unavailable: int, needed: int) -> None:
    assert pdb_max_unavailable(voters) == max_unavailable
    assert quorum(voters) == needed
    assert voters - pdb_max_unavailable(voters) >= quorum(voters)


def test_learner_does_not_widen_the_disruption_budget() -> None:
    voters3 = (_member(0), _member(1), _member(2))
    # 5 members but 3 voters: the budget is 1, not the 2 that counting learners would give.
    members = (*voters3, _member(3, learner=True), _member(4, learner=True))
    assert disruption_budget(members) == 1
    assert disruption_budget((*voters3, _member(3), _member(4))) == 2
    assert disruption_budget((_member(0), _member(1, learner=True))) == 0


def test_data_lost_member_is_never_counted_healthy() -> None:
    lost = replace(_member(1), data_lost=True)
    obs = Observed("demo", Spec(3, V1), frozenset({0, 1, 2}), (_member(0), lost, _member(2)),
                   leader_id=100,
                   claims=frozenset({0, 1, 2}))
    assert plan(obs) == RemoveMember(1, 101, RemovalCause.DATA_LOST)


PURE_MODULES = ("planner.py", "types.py", "quorum.py", "view.py", "waits.py")
ALLOWED = {"__future__", "collections.abc", "dataclasses", "enum", "typing",
           "raftkv.operator.types", "raftkv.operator.quorum", "raftkv.operator.view",
           "raftkv.operator.waits"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_planner_modules_import_nothing_that_does_io(module: str) -> None:
    path = Path(planner.__file__).with_name(module)
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= ALLOWED, f"{module} imports {sorted(imported - ALLOWED)}"
