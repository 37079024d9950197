"""Pure tests: durations with units, etcdctl-style formatting, option hoisting, the check
rules and the leader tracker."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from raftkv.client import EndpointStatus, ErrorKind, EtcdError, Member, MemberList, parse_endpoint
from raftkv.diag.app import hoist_global_options
from raftkv.diag.checks import Severity, Thresholds, evaluate, worst
from raftkv.diag.gather import EndpointReport, cluster_view, peer_port_error
from raftkv.diag.latency import Latency
from raftkv.diag.tracker import LeaderTracker
from raftkv.diag.units import fmt_bytes, fmt_duration, hex_id, parse_duration


def test_durations() -> None:
    assert parse_duration("10ms") == 0.01
    assert parse_duration("1m30s") == 90
    assert parse_duration("2") == 2
    assert parse_duration("250us") == 0.00025
    for bad in ("", "10x", "-1s", "0s", "1s10", "ms"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert fmt_duration(0.0123) == "12.3ms"
    assert fmt_duration(8.192) == "8.192s"
    assert fmt_duration(math.nan) == "n/a" and fmt_duration(None) == "-"


def test_etcdctl_formats() -> None:
    assert hex_id(10276657743932975437) == "8e9e05c52164694d"
    assert fmt_bytes(20480) == "20 kB" and fmt_bytes(5) == "5 B"
    assert fmt_bytes(1_234_567) == "1.2 MB"


def test_hoisting_keeps_etcdctl_habits() -> None:
    assert hoist_global_options(["status", "--endpoints", "a:1", "-w", "json"]) == [
        "--endpoints", "a:1", "-w", "json", "status"]
    assert hoist_global_options(["check", "--window=1s", "--cluster"]) == [
        "--cluster", "check", "--window=1s"]


def st(mid: int, leader: int, term: int = 2, applied: int = 10, port: int = 1) -> EndpointStatus:
    return EndpointStatus(f"h:{port}", 1, mid, 5, "3.5.1", 100, 100, leader, False, term,
                          applied, applied)


MEMBERS = MemberList(1, 1, 2, tuple(
    Member(i, f"m{i}", (f"http://h:{100 + i}",), (f"http://h:{i}",), False) for i in (1, 2, 3)))


def rep(i: int, status: EndpointStatus | None, error: EtcdError | None = None) -> EndpointReport:
    return EndpointReport(parse_endpoint(f"h:{i}"), f"http://h:{i}/metrics", status,
                          MEMBERS if status else None, error)


def test_check_rules() -> None:
    ok = [rep(i, st(i, 1, port=i)) for i in (1, 2, 3)]
    th = Thresholds()
    assert evaluate(ok, cluster_view(ok), {}, [], th) == []
    lat = Latency("h:1", "u", wal_fsync={0.99: 0.02}, backend_commit={0.99: math.nan})
    f = evaluate(ok, cluster_view(ok), {"h:1": lat}, [], th)
    assert [(x.rule, x.severity) for x in f] == [("wal-fsync-p99", Severity.WARNING)]
    down = EtcdError(ErrorKind.UNREACHABLE, "h:2", "refused")
    two_down = [rep(1, st(1, 0, term=5)), rep(2, None, down), rep(3, None, down)]
    f = evaluate(two_down, cluster_view(two_down), {}, [], th)
    assert worst(f) == Severity.CRITICAL and {x.rule for x in f} == {
        "no-leader", "quorum", "member-unreachable"}
    none = [rep(1, None, down)]
    assert worst(evaluate(none, cluster_view(none), {}, [], th)) == Severity.UNKNOWN
    split = [rep(1, st(1, 1)), rep(2, st(2, 2, term=3)), rep(3, st(3, 1))]
    f = evaluate(split, cluster_view(split), {}, [], th)
    assert [x.rule for x in f] == ["leader-disagreement"]


def test_quorum_arithmetic_and_peer_port() -> None:
    v = cluster_view([rep(i, st(i, 1, applied=10 + i)) for i in (1, 2, 3)])
    assert (v.members, v.quorum, v.failures_tolerated, v.reachable) == (3, 2, 1, 3)
    assert v.leader == 1 and v.agree and v.applied_index_spread == 2
    assert peer_port_error(parse_endpoint("h:101"), MEMBERS) is not None
    assert peer_port_error(parse_endpoint("h:1"), MEMBERS) is None


def test_tracker_measures_the_leaderless_spell() -> None:
    t = LeaderTracker()
    dead = EtcdError(ErrorKind.UNREACHABLE, "h:1", "refused")
    assert [e.kind for e in t.observe(0.0, {"a": st(1, 1), "b": st(2, 1)})] == ["initial"]
    ev = t.observe(1.0, {"a": dead, "b": st(2, 1)})
    assert [e.kind for e in ev] == ["unreachable", "leader-lost"]
    assert t.observe(1.5, {"a": dead, "b": st(2, 0, term=3)}) == []
    # etcd may answer with the new leader and the old term for a moment: not an election.
    assert t.observe(2.25, {"a": dead, "b": st(2, 2, term=2)}) == []
    assert t.observe(2.5, {"a": dead, "b": st(2, 2, term=3)}) == []
    ev = t.observe(2.75, {"a": dead, "b": st(2, 2, term=3)})
    (e,) = ev
    assert (e.kind, e.leader, e.term, e.previous_leader, e.previous_term) == (
        "elected", 2, 3, 1, 2)
    assert e.leaderless_for == 1.25 and t.elections == 1
    # A second change is confirmed the same way, without a leaderless poll in between.
    a_leads = {"a": st(1, 1, term=4), "b": st(2, 1, term=4)}
    assert [e.kind for e in t.observe(3.0, a_leads)] == ["back"]
    (e,) = t.observe(3.25, a_leads)
    assert (e.kind, e.leader, e.term, e.leaderless_for) == ("elected", 1, 4, 0.0)
    # A one-poll blip of another leader is not reported.
    assert t.observe(3.5, {"a": st(1, 2, term=5), "b": st(2, 2, term=5)}) == []
    assert t.observe(3.75, a_leads) == []
    assert (t.leader, t.term, t.elections) == (1, 4, 2)


@pytest.mark.parametrize("given, want", [(None, "native"), ("ares", "ares")])
def test_diag_picks_the_native_resolver_unless_told(given: str | None, want: str) -> None:
    """In a pod, gRPC's c-ares resolver may ignore the search domains a short Service
    name needs; diag selects the native one before grpc loads, and a user's choice stays
    (the kind e2e runs diag against <cluster>.<ns>.svc from a pod without the variable)."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_DNS_RESOLVER"}
    if given:
        env["GRPC_DNS_RESOLVER"] = given
    out = subprocess.run([sys.executable, "-c", "import os, raftkv.diag.app; "
                          "print(os.environ['GRPC_DNS_RESOLVER'])"],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == want
