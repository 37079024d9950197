"""CertStore against an in-memory stand-in for the Secrets API: what it issues, and when not.

The stand-in keeps Secrets as the API server would (create refuses an existing name,
replace overwrites) and counts writes, so "nothing changes while fresh" is checked as
"no write happened".
"""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from raftkv.operator import certs, pki
from raftkv.operator.certstore import CertsMissing, CertStore
from raftkv.operator.kube import Kube
from raftkv.operator.objects import ClusterSpec

BODY: dict[str, Any] = {
    "metadata": {"name": "demo", "namespace": "ns1", "uid": "0123456789abcdef"},
    "spec": {"replicas": 3, "tls": {"mode": "Auto", "auto": {
        "leafLifetimeSeconds": 600, "renewBeforeSeconds": 200}}},
}
SPEC = ClusterSpec.of(BODY, "raftkv", "0.1.0")


class FakeSecrets:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[str] = []

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        got = self.store.get((namespace, name))
        return None if got is None else dict(got["data"])

    async def create_secret(self, body: dict[str, Any]) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.store:
            return False
        self.store[key] = copy.deepcopy(body)
        self.writes.append(f"create {key[1]}")
        return True

    async def replace_secret(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        assert key in self.store
        self.store[key] = copy.deepcopy(body)
        self.writes.append(f"replace {key[1]}")


def store(tmp_path: Path) -> tuple[CertStore, FakeSecrets]:
    fake = FakeSecrets()
    return CertStore(cast(Kube, fake), tmp_path / "tls"), fake


def test_member_certificates_issued_once_then_kept_until_due(tmp_path: Path) -> None:
    cs, fake = store(tmp_path)
    now = int(time.time())
    first = asyncio.run(cs.member(SPEC, 1, now))
    assert first - now in range(599, 602)
    assert fake.writes == ["create demo-ca", "create demo-1-server-tls", "create demo-1-peer-tls"]
    fake.writes.clear()
    assert asyncio.run(cs.member(SPEC, 1, now + 399)) == first  # 201 s left: not due
    assert fake.writes == []
    renewed = asyncio.run(cs.member(SPEC, 1, now + 400))  # 200 s left: due
    assert renewed > first
    assert fake.writes == ["replace demo-1-server-tls", "replace demo-1-peer-tls"]


def test_certificates_from_another_ca_are_reissued(tmp_path: Path) -> None:
    cs, fake = store(tmp_path)
    now = int(time.time())
    asyncio.run(cs.member(SPEC, 0, now))
    other = ClusterSpec.of({**BODY, "metadata": {**BODY["metadata"], "uid": "ffff"}},
                           "raftkv", "0.1.0")
    ca = certs.new_ca(other, datetime.now(UTC))
    fake.store[("ns1", "demo-ca")] = certs.ca_secret(SPEC, ca)  # the CA was replaced
    fake.writes.clear()
    asyncio.run(cs.member(SPEC, 0, now))
    assert fake.writes == ["replace demo-0-server-tls", "replace demo-0-peer-tls"]
    got = certs.pair_of(fake.store[("ns1", "demo-0-server-tls")]["data"])
    assert got is not None and got[1] == ca.cert


def test_a_racing_replica_keeps_the_first_ca(tmp_path: Path) -> None:
    cs, fake = store(tmp_path)
    first = asyncio.run(cs.ca(SPEC))

    class Racing(FakeSecrets):
        async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
            if not self.writes:  # the first read misses: the other replica creates it now
                self.writes.append("raced")
                return None
            return await super().secret_data(namespace, name)

    racing = Racing()
    racing.store = fake.store
    cs2 = CertStore(cast(Kube, racing), tmp_path / "tls2")
    assert asyncio.run(cs2.ca(SPEC)) == first


def test_client_files_are_private_and_follow_the_secret(tmp_path: Path) -> None:
    cs, fake = store(tmp_path)
    now = int(time.time())
    tls = asyncio.run(cs.client(SPEC, now))
    assert tls is not None and tls.key is not None and tls.cert is not None
    assert oct(tls.key.stat().st_mode & 0o777) == "0o600"
    assert oct(tls.key.parent.stat().st_mode & 0o777) == "0o700"
    pem = tls.cert.read_bytes()
    assert asyncio.run(cs.client(SPEC, now + 10)) == tls and tls.cert.read_bytes() == pem
    asyncio.run(cs.client(SPEC, now + 500))  # due: renewed, files rewritten
    assert tls.cert.read_bytes() != pem
    assert "replace demo-client-tls" in fake.writes


def test_secrets_mode_reads_the_named_client_secret_or_says_what_is_missing(
        tmp_path: Path) -> None:
    named = ClusterSpec.of({**BODY, "spec": {"tls": {"mode": "Secrets", "secrets": {
        "server": "srv", "peer": "peer", "client": "cli"}}}}, "raftkv", "0.1.0")
    cs, fake = store(tmp_path)
    with pytest.raises(CertsMissing, match=r"Secret cli \(spec.tls.secrets.client\)"):
        asyncio.run(cs.client(named, int(time.time())))
    auto_ca = asyncio.run(cs.ca(SPEC))
    pair = certs.issue_client(SPEC, auto_ca, datetime.now(UTC))
    fake.store[("ns1", "cli")] = certs.secret(named, "cli", pair, auto_ca.cert)
    tls = asyncio.run(cs.client(named, int(time.time())))
    assert tls is not None and tls.cacert is not None
    assert tls.cacert.read_bytes() == auto_ca.cert
    assert not [w for w in fake.writes if "cli" in w]  # never written by the operator
    assert cs.client_not_after[("ns1", "demo")] == pair.not_after
    soon = pki.issue(auto_ca, "srv", datetime.now(UTC), timedelta(seconds=300))
    fake.store[("ns1", "srv")] = certs.secret(named, "srv", soon, auto_ca.cert)
    asyncio.run(cs.client(named, int(time.time())))
    assert cs.client_not_after[("ns1", "demo")] == soon.not_after < pair.not_after
    off = ClusterSpec.of({**BODY, "spec": {"tls": {"mode": "Disabled"}}}, "raftkv", "0.1.0")
    assert asyncio.run(cs.client(off, 0)) is None
