"""Observe a RaftCluster: its pods and claims in Kubernetes, and its members over etcd's API.

:func:`observe_members` asks every member pod for Maintenance.Status (over raftkv's
client) and /version, then one member (the leader when known) for MemberList, and
:func:`to_observed` turns that, with the pods and claims, into the planner's
:class:`~raftkv.operator.types.Observed`. The Kubernetes reads are done by the caller
(``raftkv.operator.kube``), so that this module's conversion is testable on plain data.

Invariants:
- a member is healthy only if its pod exists, its own Status answers, it knows a leader
  and reports no error; a member that does not answer is unhealthy, never absent;
- a voter whose volume claim is gone has lost its data (``data_lost``); a learner
  without a claim is a new member whose pod is not created yet;
- ``members`` is None when no member answers, and the leader is a member that says so
  of itself (etcd's FindLeaderStatus rule);
- every network call is bounded (dial and command timeouts, /version by a deadline).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from raftkv.client import EndpointStatus, EtcdClient, EtcdError, MemberList, parse_endpoint
from raftkv.client.errors import ErrorKind
from raftkv.client.tls import TLSConfig
from raftkv.operator.objects import METRICS_PORT, ClusterSpec, ordinal_of
from raftkv.operator.tls import TLSMode
from raftkv.operator.tlsmode import ModeDecision
from raftkv.operator.types import Member, Observed, Spec, Step

T = TypeVar("T")


@dataclass(frozen=True)
class PodInfo:
    """One member pod as Kubernetes shows it."""

    ordinal: int
    image: str
    phase: str
    terminating: bool = False
    voter_label: str | None = None
    certs_not_after: int | None = None  # annotation raftkv.dev/certs-not-after
    client_scheme: str | None = None  # of its --listen-client-urls: "http" or "https"


@dataclass(frozen=True)
class MemberInfo:
    """One Raft member: what MemberList says, and its own Status if it answered."""

    ordinal: int
    id: int
    learner: bool
    status: EndpointStatus | None = None
    version: str = ""


@dataclass
class Observation:
    """What one reconcile saw (the planner's input is :meth:`observed`)."""

    spec: ClusterSpec
    pods: dict[int, PodInfo]
    claims: frozenset[int]
    members: list[MemberInfo] | None
    leader_id: int | None
    in_progress: Step | None = None
    errors: list[str] = field(default_factory=list)
    now: int = 0  # Unix seconds, when observed
    tls: TLSConfig | None = None  # how the operator connects to the members
    tls_decision: ModeDecision | None = None  # None: spec.tls as the spec says
    spec_tls_mode: TLSMode | None = None  # what spec.tls.mode reads (None: as spec.tls)
    client_not_after: int | None = None  # CertStore.client_not_after for this cluster

    @property
    def certs_not_after(self) -> int | None:
        """The earliest expiry among the members' certificates the operator knows of
        (pods' annotations; the Secrets in mode Secrets) and its own client certificate."""
        known = [p.certs_not_after for p in self.pods.values()
                 if p.certs_not_after is not None and not p.terminating]
        if self.client_not_after is not None:
            known.append(self.client_not_after)
        return min(known) if known and self.spec.tls.enabled else None

    def healthy(self, m: MemberInfo) -> bool:
        s = m.status
        return (m.ordinal in self.pods and not self.pods[m.ordinal].terminating
                and s is not None and s.leader != 0 and not s.errors)

    def observed(self) -> Observed:
        members = None
        if self.members is not None:
            members = tuple(
                Member(
                    ordinal=m.ordinal, id=m.id, learner=m.learner, healthy=self.healthy(m),
                    raft_index=m.status.raft_index if m.status else 0,
                    image=self.pods[m.ordinal].image if m.ordinal in self.pods else "",
                    data_lost=not m.learner and m.ordinal not in self.claims,
                    cert_not_after=(self.pods[m.ordinal].certs_not_after
                                    if m.ordinal in self.pods else None),
                )
                for m in sorted(self.members, key=lambda m: m.ordinal)
            )
        return Observed(
            cluster=self.spec.name,
            spec=Spec(self.spec.replicas, self.spec.image,
                      self.spec.tls.renew_before if self.spec.tls.auto else None),
            pods=frozenset(self.pods),
            members=members,
            leader_id=self.leader_id,
            claims=self.claims,
            in_progress=self.in_progress,
            now=self.now,
            pod_certs=tuple((o, p.certs_not_after) for o, p in sorted(self.pods.items())
                            if p.certs_not_after is not None),
        )

    @property
    def term(self) -> int:
        return max((m.status.raft_term for m in self.members or [] if m.status), default=0)

    @property
    def leader(self) -> MemberInfo | None:
        return next((m for m in self.members or [] if m.id == self.leader_id), None)


def client_for(spec: ClusterSpec, ordinal: int, endpoints: Mapping[int, str] | None = None,
               timeout: float = 3.0, tls: TLSConfig | None = None) -> EtcdClient:
    """A client for member ``ordinal``; ``endpoints`` overrides its DNS name (tests).

    ``tls`` (the cluster's CA and the operator's client certificate) is required when
    the cluster runs TLS: a TLS cluster is never dialled in plain text.
    """
    url = (endpoints or {}).get(ordinal) or spec.client_url(ordinal)
    if spec.tls.enabled and tls is None:
        raise EtcdError(ErrorKind.TLS, url, f"no client certificate for {spec.name} yet")
    return EtcdClient(parse_endpoint(url), tls=tls if spec.tls.enabled else None,
                      dial_timeout=min(2.0, timeout), command_timeout=timeout)


async def _ask(spec: ClusterSpec, o: int, endpoints: Mapping[int, str] | None,
               call: Callable[[EtcdClient], Awaitable[T]],
               tls: TLSConfig | None = None) -> T | None:
    """One call on member ``o``'s own client; None when the member does not answer."""
    try:
        c = client_for(spec, o, endpoints, tls=tls)
    except EtcdError:
        return None
    try:
        return await call(c)
    except EtcdError:
        return None
    finally:
        await c.close()


async def _status(spec: ClusterSpec, o: int, endpoints: Mapping[int, str] | None,
                  tls: TLSConfig | None) -> EndpointStatus | None:
    return await _ask(spec, o, endpoints, lambda c: c.status(), tls)


async def http_version(url: str, timeout: float = 2.0) -> str:
    """The "raftkv" field of a member's /version, or "" when it does not answer."""
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET /version HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read(65536)
            writer.close()
    except (OSError, TimeoutError, ValueError):
        return ""
    try:
        return str(json.loads(raw.partition(b"\r\n\r\n")[2]).get("raftkv", ""))
    except (ValueError, AttributeError):
        return ""


async def _member_list(spec: ClusterSpec, o: int, endpoints: Mapping[int, str] | None,
                       tls: TLSConfig | None) -> MemberList | None:
    return await _ask(spec, o, endpoints, lambda c: c.member_list(), tls)


async def observe_members(
    spec: ClusterSpec, pods: Mapping[int, PodInfo],
    endpoints: Mapping[int, str] | None = None,
    metrics: Mapping[int, str] | None = None,
    tls: TLSConfig | None = None,
) -> tuple[list[MemberInfo] | None, int | None]:
    """Members (None if none answers) and the leader's ID, from the pods that exist."""
    ordinals = sorted(pods)
    statuses = dict(zip(ordinals, await asyncio.gather(
        *(_status(spec, o, endpoints, tls) for o in ordinals)), strict=True))
    answering = [o for o in ordinals if statuses[o] is not None]
    if not answering:
        return None, None
    answered = {o: s for o, s in statuses.items() if s is not None}
    leaders = [o for o, s in answered.items() if s.is_leader]
    leader_id = answered[leaders[0]].member_id if leaders else None
    ml = None
    for o in leaders + [o for o in answering if o not in leaders]:
        ml = await _member_list(spec, o, endpoints, tls)
        if ml is not None:
            break
    if ml is None:
        return None, None
    by_ordinal: dict[int, MemberInfo] = {}
    for m in ml.members:
        found = [x for x in (ordinal_of(u, spec) for u in m.peer_urls) if x is not None]
        if not found:
            continue
        o = found[0]
        st = answered.get(o)
        if st is not None and st.member_id != m.id:
            st = None  # a pod answering as another member (replaced): not this member
        by_ordinal[o] = MemberInfo(o, m.id, m.is_learner, st)
    versions = await asyncio.gather(*(
        http_version((metrics or {}).get(o) or spec.metrics_url(o))
        if by_ordinal[o].status is not None else _empty() for o in sorted(by_ordinal)))
    out = [MemberInfo(mi.ordinal, mi.id, mi.learner, mi.status, v)
           for mi, v in zip((by_ordinal[o] for o in sorted(by_ordinal)), versions,
                            strict=True)]
    return out, leader_id


async def _empty() -> str:
    return ""


__all__ = ["METRICS_PORT", "MemberInfo", "Observation", "PodInfo", "observe_members"]
