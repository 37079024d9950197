"""The kubelet probes on the metrics listener: /livez, /readyz and /version.

A three-member cluster in-process: all probes answer 200 while it is healthy; with two
members stopped the survivor loses its leader, so /readyz turns 503 with a reason while
/livez stays 200 (a quorum loss must not make kubelet restart every member).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import raftkv
from raftkv.server.config import ServerConfig
from raftkv.server.http import raftkv_version
from tests.support.proc import free_port

pytestmark = pytest.mark.slow  # real raftkv members (in-process)


async def http_get(url: str) -> tuple[int, str]:
    host, _, port = url.removeprefix("http://").partition(":")
    path = "/" + port.partition("/")[2]
    reader, writer = await asyncio.open_connection(host, int(port.partition("/")[0]))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


def configs(tmp_path: Path) -> list[ServerConfig]:
    names = ["p0", "p1", "p2"]
    peers = {n: f"http://127.0.0.1:{free_port()}" for n in names}
    out = []
    for n in names:
        c = f"http://127.0.0.1:{free_port()}"
        out.append(ServerConfig(
            name=n, data_dir=tmp_path / n, listen_peer_urls=[peers[n]],
            initial_advertise_peer_urls=[peers[n]], listen_client_urls=[c],
            advertise_client_urls=[c], listen_metrics_urls=[f"http://127.0.0.1:{free_port()}"],
            initial_cluster={k: [v] for k, v in peers.items()},
            heartbeat_interval_ms=20, election_timeout_ms=200,
        ))
    return out


async def wait_status(url: str, want: int, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        code, body = await http_get(url)
        if code == want:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"{url} answered {code} {body!r}, not {want}")
        await asyncio.sleep(0.05)


async def test_probes_liveness_survives_quorum_loss_readiness_does_not(tmp_path: Path) -> None:
    cfgs = configs(tmp_path)
    nodes = [raftkv.Node(c) for c in cfgs]
    started = []
    try:
        for n in nodes:
            started.append(await n.start())
        for n in nodes:
            await n.wait_leader()
        base = [c.listen_metrics_urls[0] for c in cfgs]
        for b in base:
            assert (await wait_status(f"{b}/readyz", 200)) == "ok\n"
            assert await http_get(f"{b}/livez") == (200, "ok\n")
            code, body = await http_get(f"{b}/version")
            assert code == 200
            assert json.loads(body) == {"etcdserver": "3.6.16", "etcdcluster": "3.6.0",
                                        "raftkv": raftkv_version()}
        for n in nodes[1:]:
            await n.stop()
            started.remove(n)
        reason = await wait_status(f"{base[0]}/readyz", 503)
        assert "no leader" in reason or "not caught up" in reason
        assert await http_get(f"{base[0]}/livez") == (200, "ok\n")
    finally:
        for n in started:
            await n.stop()
