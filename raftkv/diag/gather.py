"""Collecting what every endpoint says, concurrently, and the cluster view derived from it.

Invariants:
- one endpoint's failure never hides another's answer: each endpoint yields either a
  status or a classified error;
- an endpoint that answers but is listed as a member's *peer* URL (and no member's client
  URL) is reported as "not an etcd client port": etcd 3.5 serves gRPC on peer ports too,
  so a peer port would otherwise pass silently;
- quorum arithmetic counts voting members only (learners do not vote).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from raftkv.client import (
    Endpoint,
    EndpointStatus,
    ErrorKind,
    EtcdError,
    MemberList,
    parse_endpoint,
)
from raftkv.diag.options import Options
from raftkv.diag.scrape import BACKEND_COMMIT, WAL_FSYNC, MetricsError, scrape


@dataclass
class EndpointReport:
    endpoint: Endpoint
    metrics_url: str
    status: EndpointStatus | None = None
    members: MemberList | None = None
    error: EtcdError | None = None
    metrics_error: MetricsError | None = None
    wal_fsync_p99: float | None = None
    backend_commit_p99: float | None = None


@dataclass
class ClusterView:
    members: int
    voters: int
    quorum: int
    failures_tolerated: int
    reachable: int
    reachable_voters: int
    leader: int | None
    leader_name: str | None
    leaders_seen: list[int] = field(default_factory=list)
    terms_seen: list[int] = field(default_factory=list)
    agree: bool = False
    applied_index_spread: int | None = None

    @property
    def has_quorum(self) -> bool:
        return self.voters > 0 and self.reachable_voters >= self.quorum


def _same_url(endpoint: Endpoint, url: str) -> bool:
    try:
        other = parse_endpoint(url)
    except ValueError:
        return False
    return (other.host, other.port) == (endpoint.host, endpoint.port)


def peer_port_error(endpoint: Endpoint, members: MemberList) -> EtcdError | None:
    for m in members.members:
        if any(_same_url(endpoint, u) for u in m.client_urls):
            return None
    for m in members.members:
        if any(_same_url(endpoint, u) for u in m.peer_urls):
            clients = ",".join(m.client_urls) or "unknown"
            return EtcdError(
                ErrorKind.NOT_ETCD,
                endpoint.target,
                f"this is the peer URL of member {m.name or hex(m.id)}; "
                f"its client URL is {clients}",
            )
    return None


async def expand_cluster(opts: Options) -> tuple[list[Endpoint], list[EtcdError]]:
    """--cluster: every member's client URLs, from the first endpoint that answers."""
    errors: list[EtcdError] = []
    for ep in opts.endpoints:
        try:
            async with opts.client(ep) as c:
                ml = await c.member_list()
        except EtcdError as exc:
            errors.append(exc)
            continue
        scheme = ep.scheme
        out: list[Endpoint] = []
        for m in ml.members:
            for u in m.client_urls:
                e = parse_endpoint(u, scheme)
                if e not in out:
                    out.append(e)
        return out, errors
    return [], errors


async def status_of(opts: Options, index: int, ep: Endpoint, with_metrics: bool) -> EndpointReport:
    rep = EndpointReport(ep, opts.metrics_url_for(index, ep))
    try:
        async with opts.client(ep) as c:
            rep.status = await c.status()
            rep.members = await c.member_list()
    except EtcdError as exc:
        rep.error = exc
        return rep
    bad = peer_port_error(ep, rep.members)
    if bad is not None:
        rep.error, rep.status = bad, None
        return rep
    if with_metrics:
        try:
            s = await asyncio.to_thread(
                scrape, rep.metrics_url, opts.command_timeout, opts.tls,
            )
            rep.wal_fsync_p99 = s.histogram(WAL_FSYNC).quantile(0.99)
            rep.backend_commit_p99 = s.histogram(BACKEND_COMMIT).quantile(0.99)
        except MetricsError as exc:
            rep.metrics_error = exc
    return rep


async def resolve_endpoints(opts: Options) -> tuple[list[Endpoint], list[EtcdError]]:
    if not opts.cluster:
        return list(opts.endpoints), []
    return await expand_cluster(opts)


async def collect(opts: Options, with_metrics: bool = True) -> list[EndpointReport]:
    endpoints, _ = await resolve_endpoints(opts)
    if not endpoints:
        endpoints = list(opts.endpoints)
    opts.check_metrics_alignment(endpoints)
    return list(
        await asyncio.gather(
            *(status_of(opts, i, ep, with_metrics) for i, ep in enumerate(endpoints))
        )
    )


def cluster_view(reports: list[EndpointReport]) -> ClusterView:
    ml = next((r.members for r in reports if r.members is not None and r.error is None), None)
    answered = [r.status for r in reports if r.status is not None]
    members = list(ml.members) if ml else []
    voter_ids = {m.id for m in members if not m.is_learner}
    voters = len(voter_ids)
    quorum = voters // 2 + 1 if voters else 0
    answered_ids = {s.member_id for s in answered}
    leaders = sorted({s.leader for s in answered})
    terms = sorted({s.raft_term for s in answered})
    leader = leaders[0] if len(leaders) == 1 and leaders[0] != 0 else None
    names = {m.id: m.name for m in members}
    applied = [s.raft_applied_index for s in answered]
    return ClusterView(
        members=len(members),
        voters=voters,
        quorum=quorum,
        failures_tolerated=max(voters - quorum, 0),
        reachable=len(answered_ids),
        reachable_voters=len(answered_ids & voter_ids),
        leader=leader,
        leader_name=names.get(leader) if leader is not None else None,
        leaders_seen=leaders,
        terms_seen=terms,
        agree=bool(answered) and len(leaders) == 1 and leaders[0] != 0 and len(terms) == 1,
        applied_index_spread=(max(applied) - min(applied)) if applied else None,
    )


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x
