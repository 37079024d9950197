"""Which wait messages are news: a learner's progress is not, another member or another
cause is (the key decides whether a wait gets a new Event); a missing TLS Secret is one
Warning per cause, not one per tick; a cluster from before spec.tls gets one Warning, and
its record in status.tls keeps it on plain text."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from raftkv.operator.certstore import CertsMissing, CertStore
from raftkv.operator.kube import Kube
from raftkv.operator.observe import PodInfo
from raftkv.operator.reconcile import Reconciler, _event_key
from raftkv.operator.types import Wait, WaitKind


def test_progress_numbers_are_not_news() -> None:
    a = "Learner demo-3 is catching up: raft index 120 of the leader's 400 (30%)."
    b = "Learner demo-3 is catching up: raft index 390 of the leader's 412 (94.7%)."
    assert _event_key(a) == _event_key(b)


def test_another_member_or_cause_is_news() -> None:
    a = "Learner demo-3 is catching up: raft index 120 of the leader's 400."
    assert _event_key(a) != _event_key(a.replace("demo-3", "demo-4"))
    assert _event_key(a) != _event_key("Learner demo-3 is not healthy, so it cannot catch up.")
    assert _event_key(None) is None


def test_a_missing_tls_secret_blocks_with_one_warning_per_cause() -> None:
    causes = ["Secret cli (spec.tls.secrets.client) is missing"] * 2 + ["Secret cli is bad"]

    class NoCerts:
        async def client(self, spec: Any, now: int) -> None:
            raise CertsMissing(causes.pop(0))

    class NoKube:  # nothing but the pods (to know the TLS mode) while the Secret is missing
        async def pods(self, spec: Any) -> dict[int, Any]:
            return {}

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"Kube.{name} called")

    events: list[tuple[str, str, str]] = []
    r = Reconciler(cast(Kube, NoKube()), lambda _b, t, reason, m: events.append((t, reason, m)),
                   certs=cast(CertStore, NoCerts()))
    body = {"metadata": {"name": "ext", "namespace": "ns", "uid": "u1"},
            "spec": {"tls": {"mode": "Secrets", "secrets": {
                "server": "srv", "peer": "peer", "client": "cli"}}}}

    async def three() -> list[Any]:
        return [await r(body) for _ in range(3)]

    plans = asyncio.run(three())
    assert all(isinstance(p, Wait) and p.kind is WaitKind.BLOCKED for p in plans)
    assert events == [
        ("Warning", "CertificatesMissing", "Secret cli (spec.tls.secrets.client) is missing."),
        ("Warning", "CertificatesMissing", "Secret cli is bad.")]


class LegacyKube:
    """Three plain-text member pods of a cluster the operator has no TLS record of; the
    members themselves do not answer (nothing listens on 127.77.x.1)."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.secret_calls = 0

    async def pods(self, spec: Any) -> dict[int, PodInfo]:
        return {o: PodInfo(o, "raftkv:0.1.0", "Running", client_scheme="http")
                for o in range(3)}

    async def claims(self, spec: Any) -> frozenset[int]:
        return frozenset(range(3))

    async def ensure_services(self, spec: Any, voters: int) -> None:
        pass

    async def patch_status(self, spec: Any, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    async def secret_data(self, namespace: str, name: str) -> None:
        self.secret_calls += 1

    async def create_secret(self, body: Any) -> bool:
        self.secret_calls += 1
        return True


def test_a_cluster_from_before_spec_tls_stays_plain_text_with_one_warning(
        tmp_path: Path) -> None:
    kube = LegacyKube()
    events: list[tuple[str, str, str]] = []
    r = Reconciler(cast(Kube, kube), lambda _b, t, reason, m: events.append((t, reason, m)),
                   host_template="127.77.{ordinal}.1",
                   certs=CertStore(cast(Kube, kube), tmp_path / "tls"))
    # what the API server returns for an object stored before spec.tls: the default Auto
    body: dict[str, Any] = {"metadata": {"name": "old", "namespace": "ns", "uid": "u2"},
                            "spec": {"replicas": 3, "tls": {"mode": "Auto"}}}

    async def twice() -> None:
        await r(body)
        body["status"] = kube.statuses[-1]  # the next read sees what was written
        await r(body)

    asyncio.run(twice())
    assert kube.secret_calls == 0, "no CA or client certificate for a plain-text cluster"
    legacy = [e for e in events if e[1] == "PlainTextBeforeTLS"]
    assert len(legacy) == 1 and legacy[0][0] == "Warning", events
    st = kube.statuses[-1]
    assert st["tls"] == {"mode": "Disabled"}
    tls = next(c for c in st["conditions"] if c["type"] == "TLS")
    assert tls["status"] == "False" and tls["reason"] == "PlainTextBeforeTLS"
    assert "create a new RaftCluster" in tls["message"]
