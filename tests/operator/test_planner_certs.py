"""Certificate renewal in the planner: one member at a time, never at the cost of quorum.

Driven against the cluster model in ``sim`` with the operator's own certificates on
(``cert_lifetime``): time advances per tick, a member whose certificates expired is
unhealthy there (its peers refuse it), and the checks are made on the model's state.
The scripted examples pin the order (followers, then a leadership transfer, then the old
leader) and the waits; the property test walks random faults and clocks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.operator.planner import due_for_renewal, plan
from raftkv.operator.types import (
    Plan,
    RenewCertificates,
    RollMember,
    Spec,
    Step,
    TransferLeadership,
    Wait,
    WaitKind,
)
from raftkv.operator.view import View, iso_utc
from tests.operator.sim import Operator, World

V1 = "raftkv:0.1.0"
LIFETIME, RENEW_BEFORE = 600, 200


def tls_cluster(replicas: int) -> World:
    """A converged cluster whose members all started on certificates issued at t=0."""
    w = World("demo", Spec(replicas, V1, renew_before=RENEW_BEFORE), cert_lifetime=LIFETIME)
    op = Operator()
    for _ in range(200):
        p = plan(w.observe(op.in_progress))
        if isinstance(p, Wait) and p.kind is WaitKind.CONVERGED:
            break
        if isinstance(p, Step):
            op.in_progress = p
            w.execute(p)
        w.tick()
    assert w.converged()
    for m in w.members.values():  # as if all were issued together, long ago
        m.cert_not_after = LIFETIME
    return w


def run(w: World, ticks: int, op: Operator | None = None) -> list[Plan]:
    """The operator loop; asserts the renewal invariants on the model at every step."""
    op = op or Operator()
    seen: list[Plan] = []
    for _ in range(ticks):
        p = plan(w.observe(op.in_progress))
        seen.append(p)
        if isinstance(p, Step):
            unhealthy = [m for m in w.members.values() if not w.healthy(m)]
            had_quorum = w.quorate()
            if isinstance(p, RenewCertificates):
                target = w.members[p.ordinal]
                if w.healthy(target):  # a member that is down anyway may restart any time
                    assert w.quorate() and w.has_leader(), p
                    assert p.ordinal != w.leader, "the leader itself was restarted"
                    assert not unhealthy, f"{p} while {unhealthy} are down"
            op.in_progress = p
            w.execute(p)
            if isinstance(p, RenewCertificates):
                after = [m for m in w.members.values() if not w.healthy(m)]
                assert len(after) <= max(1, len(unhealthy)), f"{p} took down a second member"
                assert w.quorate() or not had_quorum, f"quorum lost by {p}"
        w.tick()
    return seen


def steps(plans: list[Plan]) -> list[Step]:
    return [p for p in plans if isinstance(p, Step)]


def test_iso_utc_agrees_with_datetime() -> None:
    for ts in (0, 599, 951782400, 951868799, 1709208000, 4102444799, 86400 * 36524 + 12345):
        assert iso_utc(ts) == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_nothing_is_due_while_far_from_expiry() -> None:
    w = tls_cluster(3)
    w.now = LIFETIME - RENEW_BEFORE - 1
    p = plan(w.observe(None))
    assert isinstance(p, Wait) and p.kind is WaitKind.CONVERGED


def test_three_members_renewed_followers_first_leader_after_a_transfer() -> None:
    w = tls_cluster(3)
    w.leader = 0
    w.now = LIFETIME - RENEW_BEFORE  # exactly due
    seen = steps(run(w, 40))
    renewals = [s for s in seen if isinstance(s, RenewCertificates)]
    assert [r.ordinal for r in renewals] == [2, 1, 0]
    transfer = next(i for i, s in enumerate(seen) if isinstance(s, TransferLeadership))
    assert seen.index(RenewCertificates(1)) < transfer < seen.index(RenewCertificates(0))
    assert all(m.cert_not_after is not None and m.cert_not_after > LIFETIME
               for m in w.members.values())
    assert w.converged()


def test_five_members_due_together_restart_one_at_a_time() -> None:
    w = tls_cluster(5)
    w.now = LIFETIME - RENEW_BEFORE + 10
    plans = run(w, 80)
    renewed = [s.ordinal for s in steps(plans) if isinstance(s, RenewCertificates)]
    assert sorted(renewed) == [0, 1, 2, 3, 4]
    # between two renewals the operator waited for the restarted member to come back
    settling = [p for p in plans if isinstance(p, Wait) and p.kind is WaitKind.SETTLING]
    assert any("renewed certificates" in p.reason for p in settling)


def test_paused_while_another_member_is_down() -> None:
    w = tls_cluster(3)
    w.now = LIFETIME - RENEW_BEFORE
    w.members[1].cert_not_after = LIFETIME * 10  # 1 is not due
    w.crash(1)
    w.tick()
    p = plan(w.observe(None))
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert "Certificate renewal is paused" in p.reason and "demo-1" in p.reason


def test_a_due_member_that_is_down_is_renewed_first() -> None:
    w = tls_cluster(3)
    w.leader = 0
    w.now = LIFETIME + 1  # expired: every member is refused by its peers ...
    for o in (0, 1):  # ... except those renewed in time by hand
        w.members[o].cert_not_after = 10 * LIFETIME
    w.tick()
    assert not w.healthy(w.members[2]) and w.quorate()
    p = plan(w.observe(None))
    assert p == RenewCertificates(2)


def test_single_voter_is_not_restarted_and_the_wait_says_how() -> None:
    w = tls_cluster(1)
    w.now = LIFETIME - RENEW_BEFORE
    p = plan(w.observe(None))
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    assert "kubectl delete pod demo-0" in p.reason and "1970-01-01T00:10:00Z" in p.reason
    # the way out it names: the pod deleted, it is created again on renewed certificates
    del w.pods[0]
    seen = steps(run(w, 10))
    assert seen[0].describe("demo") == "Create pod demo-0 for its member."
    assert w.members[0].cert_not_after == w.now + LIFETIME


def test_renewal_quorum_guard_and_without_operator_certificates() -> None:
    w = tls_cluster(3)
    obs = w.observe(None)
    assert obs.members is not None
    due = replace(obs, now=LIFETIME)
    assert [m.ordinal for m in due_for_renewal(View.of(due))] == [0, 1, 2]
    off = replace(due, spec=Spec(3, V1))  # Secrets/Disabled: renew_before is None
    assert due_for_renewal(View.of(off)) == []
    p = plan(off)
    assert not isinstance(p, (RenewCertificates, RollMember))


def test_every_certificate_expired_while_the_operator_was_away() -> None:
    w = tls_cluster(3)
    w.now = LIFETIME + 1000
    w.tick()
    assert w.observe(None).members is None  # nobody answers
    seen = steps(run(w, 30))
    assert sorted(s.ordinal for s in seen if isinstance(s, RenewCertificates)) == [0, 1, 2]
    assert w.converged() and not due_for_renewal(View.of(w.observe(None)))


def test_two_of_three_expired_are_restarted_without_quorum() -> None:
    w = tls_cluster(3)
    w.now = LIFETIME + 1
    w.members[0].cert_not_after = 10 * LIFETIME
    w.tick()
    assert not w.quorate()
    first = plan(w.observe(None))
    assert isinstance(first, RenewCertificates) and first.ordinal in (1, 2)
    run(w, 30)
    assert w.converged()


def test_restart_in_progress_settles_before_the_next() -> None:
    w = tls_cluster(3)
    w.leader = 0
    w.now = LIFETIME - RENEW_BEFORE
    op = Operator()
    p = plan(w.observe(op.in_progress))
    assert p == RenewCertificates(2)
    op.in_progress = p
    w.execute(p)
    waited = plan(w.observe(op.in_progress))
    assert isinstance(waited, Wait) and waited.kind is WaitKind.SETTLING
    assert waited.reason.startswith("Waiting for demo-2 to come back on renewed certificates")


SETTINGS = settings(derandomize=True, deadline=None, database=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow])
EVENT = st.one_of(
    st.tuples(st.just("crash"), st.integers(0, 4)),
    st.tuples(st.just("recover"), st.integers(0, 4)),
    st.tuples(st.just("wait"), st.integers(1, 120)),
    st.tuples(st.just("restart"), st.booleans()),
)


@SETTINGS
@given(replicas=st.sampled_from([3, 5]), events=st.lists(EVENT, max_size=25))
def test_random_faults_and_clocks_never_restart_two_or_break_quorum(
        replicas: int, events: list[tuple[str, object]]) -> None:
    w = tls_cluster(replicas)
    w.tick_seconds = 7
    op = Operator()
    for kind, arg in events:
        if kind == "crash":
            w.crash(int(arg))  # type: ignore[call-overload]
        elif kind == "recover":
            w.recover(int(arg))  # type: ignore[call-overload]
        elif kind == "wait":
            w.now += int(arg)  # type: ignore[call-overload]
        else:
            op.restart(keep_record=bool(arg))
        run(w, 1, op)
    for o in list(w.members):
        w.recover(o)
    w.tick()
    w.tick_seconds = 0
    run(w, 60, op)
    assert not due_for_renewal(View.of(w.observe(None)))
    assert all(w.healthy(m) for m in w.members.values())
