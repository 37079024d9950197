"""MemberDialer: plain channels for http URLs, TLS ones from the client port's certificate
source for https URLs, renewed when the certificate files change."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from raftkv.server.memberdial import MemberDialer, split_url
from raftkv.server.tlsconfig import TLSInfo, TLSSettings
from raftkv.server.tlsfiles import CertSource
from tests.support.pki import cluster_pki, issue


def test_split_url() -> None:
    assert split_url("http://127.0.0.1:2379") == (False, "127.0.0.1:2379")
    assert split_url("https://10.0.0.1:2379") == (True, "10.0.0.1:2379")
    assert split_url("127.0.0.1:2379") == (False, "127.0.0.1:2379")


def test_channels_are_cached_and_renewed_on_rotation(tmp_path: Path) -> None:
    pki = cluster_pki(tmp_path / "pki")
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("crt", "key"):
        shutil.copy(pki.dir / f"server.{suffix}", live / f"server.{suffix}")
    source = CertSource(TLSInfo(cert_file=str(live / "server.crt"),
                                key_file=str(live / "server.key"),
                                trusted_ca_file=str(pki.crt(pki.ca)), client_cert_auth=True),
                        TLSSettings())

    async def run() -> None:
        dialer = MemberDialer(lambda: source)
        plain = await dialer.channel("http://127.0.0.1:1")
        first = await dialer.channel("https://127.0.0.1:1")
        assert plain is not first
        assert await dialer.channel("https://127.0.0.1:1") is first
        assert await dialer.channel("http://127.0.0.1:1") is plain
        issue(pki.dir, pki.ca, "server2", "/CN=raftkv-server", usage="peer")
        for suffix in ("crt", "key"):  # replaced by rename, as rotation tools do
            shutil.copy(pki.dir / f"server2.{suffix}", live / f"server.{suffix}.new")
            (live / f"server.{suffix}.new").rename(live / f"server.{suffix}")
        renewed = await dialer.channel("https://127.0.0.1:1")
        assert renewed is not first
        assert await dialer.channel("https://127.0.0.1:1") is renewed
        await dialer.close()

    asyncio.run(run())
