"""Which wait messages are news: a learner's progress is not, another member or another
cause is (the key decides whether a wait gets a new Event); a missing TLS Secret is one
Warning per cause, not one per tick."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from raftkv.operator.certstore import CertsMissing, CertStore
from raftkv.operator.kube import Kube
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

    class NoKube:  # nothing else may be asked while the client Secret is missing
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
