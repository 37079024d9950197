"""Keep a RaftCluster's certificate Secrets in shape, and give the operator its client TLS.

Auto mode: :meth:`CertStore.ca` creates the CA Secret once (CA rotation is out of scope:
the CA lives ten years); :meth:`CertStore.member` issues a member's server and peer
certificates when they are absent, unreadable, signed by another CA or due, and returns
their expiry (the pod's ``raftkv.dev/certs-not-after``); :meth:`CertStore.client` does the
same for the operator's client certificate and writes it, with the CA, to files the
gRPC client reads (and keeps its expiry in :attr:`CertStore.client_not_after`). Secrets
mode reads the client Secret the RaftCluster names, and the server and peer ones for
their expiry (``client_not_after`` is then the earliest of the three).

Invariants:
- every write is idempotent and safe against a second operator replica racing: a create
  that finds the Secret existing re-reads it and uses what is there (the CA of a cluster
  is never replaced by a second one);
- nothing is re-issued unless it is absent, broken, from another CA or due, so calling
  these on every reconcile changes nothing while the certificates are fresh;
- the client's files live under a private directory (0700), the key file 0600, and are
  rewritten only when their content changes; a directory the store made itself is
  removed by :meth:`CertStore.close` (the operator's cleanup), so no key outlives it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from raftkv.client.tls import TLSConfig
from raftkv.operator import certs
from raftkv.operator.kube import Kube
from raftkv.operator.objects import ClusterSpec
from raftkv.operator.pki import KeyPair


class CertsMissing(Exception):
    """A Secret the RaftCluster names does not exist or is not a kubernetes.io/tls one."""


class CertStore:
    def __init__(self, kube: Kube, workdir: Path | None = None) -> None:
        self.kube = kube
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="raftkv-operator-tls-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        # (ns, cluster) -> expiry of the client certificate (Secrets mode: the earliest of
        # the client, server and peer Secrets, which no pod annotation records)
        self.client_not_after: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        """Remove the client's key files if this store made their directory."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def ca(self, spec: ClusterSpec) -> KeyPair:
        got = certs.pair_of(await self.kube.secret_data(spec.namespace, spec.ca_secret))
        if got is not None:
            return got[0]
        ca = certs.new_ca(spec, datetime.now(UTC))
        if not await self.kube.create_secret(certs.ca_secret(spec, ca)):
            again = certs.pair_of(await self.kube.secret_data(spec.namespace, spec.ca_secret))
            if again is None:
                raise CertsMissing(f"Secret {spec.ca_secret} exists but is not a CA "
                                   "(kubernetes.io/tls with tls.crt, tls.key, ca.crt)")
            return again[0]
        return ca

    async def member(self, spec: ClusterSpec, ordinal: int, now: int) -> int:
        """Member ``ordinal``'s certificates fresh (issued if needed): their expiry."""
        ca = await self.ca(spec)
        have: list[KeyPair] = []
        for name in (spec.server_secret(ordinal), spec.peer_secret(ordinal)):
            got = certs.pair_of(await self.kube.secret_data(spec.namespace, name))
            if got is not None and got[1] == ca.cert \
                    and not certs.due(got[0], now, spec.tls.renew_before):
                have.append(got[0])
        if len(have) == 2:
            return min(p.not_after for p in have)
        issued = certs.issue_member(spec, ca, ordinal, datetime.fromtimestamp(now, UTC))
        for body in certs.member_secrets(spec, ordinal, issued, ca.cert):
            if not await self.kube.create_secret(body):
                await self.kube.replace_secret(body)
        return issued.not_after

    async def client(self, spec: ClusterSpec, now: int) -> TLSConfig | None:
        """The operator's client TLS for ``spec``'s members; None when TLS is off."""
        if not spec.tls.enabled:
            return None
        if spec.tls.auto:
            ca = await self.ca(spec)
            got = certs.pair_of(await self.kube.secret_data(spec.namespace, spec.client_secret))
            if got is None or got[1] != ca.cert or certs.due(got[0], now, spec.tls.renew_before):
                pair = certs.issue_client(spec, ca, datetime.fromtimestamp(now, UTC))
                body = certs.secret(spec, spec.client_secret, pair, ca.cert)
                if not await self.kube.create_secret(body):
                    await self.kube.replace_secret(body)
                got = (pair, ca.cert)
        else:
            got = certs.pair_of(await self.kube.secret_data(spec.namespace, spec.client_secret))
            if got is None:
                raise CertsMissing(
                    f"Secret {spec.client_secret} (spec.tls.secrets.client) is missing or "
                    "lacks tls.crt, tls.key or ca.crt; the operator cannot reach the members")
        pair, ca_cert = got
        expiries = [pair.not_after]
        if not spec.tls.auto:  # the members' Secrets carry no pod annotation: read them
            for name in {spec.tls.server_secret, spec.tls.peer_secret}:
                member = certs.pair_of(await self.kube.secret_data(spec.namespace, name))
                if member is not None:
                    expiries.append(member[0].not_after)
        self.client_not_after[(spec.namespace, spec.name)] = min(expiries)
        return self._files(spec, pair, ca_cert)

    def _files(self, spec: ClusterSpec, pair: KeyPair, ca_cert: bytes) -> TLSConfig:
        d = self.workdir / spec.namespace / spec.name
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths = {"ca.crt": ca_cert, "tls.crt": pair.cert, "tls.key": pair.key}
        for name, content in paths.items():
            path = d / name
            if not path.exists() or path.read_bytes() != content:
                tmp = d / f".{name}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                tmp.replace(path)
        return TLSConfig(cacert=d / "ca.crt", cert=d / "tls.crt", key=d / "tls.key")
