"""``diag check``'s rules: pure functions from observed figures to findings.

Each rule names itself, says the figures behind it, and carries a Nagios severity. The
thresholds' sources:

- WAL fsync P99 warning 10 ms: etcd's hardware guidance (FAQ, "p99 ... should be less than
  10ms"); critical 1 s: the etcd mixin's ``etcdHighFsyncDurations`` critical level.
- backend commit P99 warning 25 ms: etcd's tuning guide ("should be less than 25ms").
- DB size warning at 80 % of the quota (etcd-diagnosis' epStatusChecker), critical at 95 %
  (the mixin's ``etcdDatabaseQuotaLowSpace``); the quota is etcd's metric, else 2 GiB.
- leader changes: more than 3 in the window (the mixin warns at 4 in 15 minutes).

Invariants: nothing reachable is UNKNOWN (3) and no other rule is judged; the exit
status is the worst severity found; a NaN figure (no observations) never fires a rule.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from raftkv.client import Alarm
from raftkv.diag.gather import ClusterView, EndpointReport
from raftkv.diag.latency import Latency
from raftkv.diag.units import fmt_bytes, fmt_duration, hex_id

DEFAULT_QUOTA = 2 * 1024**3


class Severity(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Thresholds:
    fsync_warn: float = 0.010
    fsync_crit: float = 1.0
    commit_warn: float = 0.025
    db_quota_warn: float = 0.80
    db_quota_crit: float = 0.95
    max_leader_changes: float = 3


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str


def _name(rep: EndpointReport) -> str:
    return rep.endpoint.target


def evaluate(
    reports: list[EndpointReport],
    view: ClusterView,
    latency: dict[str, Latency],
    alarms: list[Alarm],
    th: Thresholds,
) -> list[Finding]:
    """``latency`` is keyed by endpoint target (host:port)."""
    out: list[Finding] = []
    answered = [r for r in reports if r.status is not None]
    if not answered:
        reasons = "; ".join(str(r.error) for r in reports if r.error is not None)
        return [Finding("unreachable", Severity.UNKNOWN, f"no endpoint answered: {reasons}")]

    # Leader.
    if all(r.status is not None and r.status.leader == 0 for r in answered):
        terms = ", ".join(
            f"{_name(r)} term {r.status.raft_term}" for r in answered if r.status is not None
        )
        out.append(Finding("no-leader", Severity.CRITICAL,
                           f"no leader: no answering member knows a leader ({terms})"))
    elif len(view.leaders_seen) > 1 or len(view.terms_seen) > 1:
        seen = ", ".join(
            f"{_name(r)} says {hex_id(r.status.leader)} term {r.status.raft_term}"
            for r in answered if r.status is not None
        )
        out.append(Finding("leader-disagreement", Severity.WARNING,
                           f"members disagree on the leader or term: {seen}"))

    # Membership and reachability.
    failed = [r for r in reports if r.error is not None]
    if view.voters and view.reachable_voters < view.quorum:
        out.append(Finding(
            "quorum", Severity.CRITICAL,
            f"quorum lost as seen from here: {view.reachable_voters} of {view.voters} voting "
            f"members answered, quorum is {view.quorum}",
        ))
    if failed:
        sev = Severity.CRITICAL if view.reachable_voters < view.quorum else Severity.WARNING
        for r in failed:
            out.append(Finding("member-unreachable", sev, str(r.error)))
    elif view.members and view.reachable < view.members:
        out.append(Finding(
            "member-unreachable", Severity.WARNING,
            f"{view.members - view.reachable} of {view.members} members were not asked "
            "(use --cluster to check them all)",
        ))

    # Alarms.
    for a in alarms:
        out.append(Finding("alarm", Severity.CRITICAL,
                           f"active alarm {a.alarm} on member {hex_id(a.member_id)}"))

    # Latency, leader changes, DB quota, from metrics.
    for r in answered:
        assert r.status is not None
        lat = latency.get(_name(r))
        if lat is None:
            continue
        if lat.error is not None:
            out.append(Finding("metrics", Severity.WARNING,
                               f"{_name(r)}: metrics unreadable: {lat.error.detail}"))
            continue
        out.extend(_latency_findings(_name(r), lat, th))
        quota = lat.last.scalar("etcd_server_quota_backend_bytes") if lat.last else None
        quota_src = "etcd_server_quota_backend_bytes"
        if not quota:
            quota, quota_src = DEFAULT_QUOTA, "etcd's default quota"
        share = r.status.db_size / quota
        sev = (Severity.CRITICAL if share > th.db_quota_crit
               else Severity.WARNING if share > th.db_quota_warn else Severity.OK)
        if sev:
            out.append(Finding(
                "db-quota", sev,
                f"{_name(r)}: DB size {fmt_bytes(r.status.db_size)} is {share:.0%} of the "
                f"quota {fmt_bytes(int(quota))} ({quota_src}); limit "
                f"{th.db_quota_warn:.0%}/{th.db_quota_crit:.0%}",
            ))
    changes = [lat.leader_changes for lat in latency.values() if lat.leader_changes is not None]
    if changes and max(changes) > th.max_leader_changes:
        out.append(Finding(
            "leader-changes", Severity.WARNING,
            f"{max(changes):g} leader changes seen in the window (limit "
            f"{th.max_leader_changes:g})",
        ))
    return out


def _latency_findings(name: str, lat: Latency, th: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    p99 = lat.wal_fsync.get(0.99, math.nan)
    if not math.isnan(p99):
        if p99 > th.fsync_crit:
            out.append(Finding("wal-fsync-p99", Severity.CRITICAL,
                               f"{name}: WAL fsync P99 {fmt_duration(p99)} > critical "
                               f"{fmt_duration(th.fsync_crit)}"))
        elif p99 > th.fsync_warn:
            out.append(Finding("wal-fsync-p99", Severity.WARNING,
                               f"{name}: WAL fsync P99 {fmt_duration(p99)} > warning "
                               f"{fmt_duration(th.fsync_warn)}"))
    c99 = lat.backend_commit.get(0.99, math.nan)
    if not math.isnan(c99) and c99 > th.commit_warn:
        out.append(Finding("backend-commit-p99", Severity.WARNING,
                           f"{name}: backend commit P99 {fmt_duration(c99)} > "
                           f"{fmt_duration(th.commit_warn)}"))
    return out


def worst(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), default=Severity.OK)
