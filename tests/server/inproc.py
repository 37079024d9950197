"""In-process raftkv clusters for server tests: N embedded members in one event loop.

Each member is a full :class:`raftkv.Node` (Raft over loopback TCP, WAL, SQLite backend,
gRPC), so tests can reach inside a member (``node.server``) to propose requests that the
API boundary would refuse, restart members, and compare their state. ``stop`` stops every
member that was started, also when a test fails half way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import raftkv
from raftkv.server.config import ServerConfig
from tests.support.proc import free_port


class InProcCluster:
    def __init__(self, workdir: Path, size: int = 3, heartbeat_ms: int = 50,
                 election_ms: int = 500, **extra: object) -> None:
        peers = {f"m{i}": f"http://127.0.0.1:{free_port()}" for i in range(size)}
        self.configs = []
        for name, peer in peers.items():
            client = f"http://127.0.0.1:{free_port()}"
            self.configs.append(ServerConfig(
                name=name, data_dir=workdir / name, listen_peer_urls=[peer],
                initial_advertise_peer_urls=[peer], listen_client_urls=[client],
                advertise_client_urls=[client],
                initial_cluster={n: [u] for n, u in peers.items()},
                heartbeat_interval_ms=heartbeat_ms, election_timeout_ms=election_ms,
                **extra))  # type: ignore[arg-type]
        self.nodes: list[raftkv.Node | None] = [None] * size

    async def start(self) -> InProcCluster:
        for i in range(len(self.configs)):
            await self.start_member(i)
        await self.wait_leader()
        return self

    async def start_member(self, i: int) -> raftkv.Node:
        node = raftkv.Node(self.configs[i])
        await node.start()
        self.nodes[i] = node
        return node

    async def stop_member(self, i: int) -> None:
        node, self.nodes[i] = self.nodes[i], None
        if node is not None:
            await node.stop()

    async def stop(self) -> None:
        for i in range(len(self.nodes)):
            await self.stop_member(i)

    def running(self) -> list[raftkv.Node]:
        return [n for n in self.nodes if n is not None]

    async def wait_leader(self, timeout: float = 30.0) -> raftkv.Node:
        """Wait until every running member knows the same leader; return the leader."""
        async def agreed() -> raftkv.Node:
            while True:
                leads = {n.server.lead for n in self.running()}
                if len(leads) == 1 and 0 not in leads:
                    lead = leads.pop()
                    return next(n for n in self.running() if n.server.id == lead)
                await asyncio.sleep(0.02)
        return await asyncio.wait_for(agreed(), timeout)

    async def wait_applied(self, index: int, timeout: float = 30.0) -> None:
        async def applied() -> None:
            while any(n.server.applied_index < index for n in self.running()):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(applied(), timeout)
