"""Real raftkv member processes on loopback for the demos: start, ask, stop.

A :class:`LocalCluster` names its members, gives each free loopback ports and a data dir
under the demo's temporary directory, and starts them as ``python -m raftkv.cli``
children. With a :class:`raftkv.netfault.proxy.ProxyHub` every member advertises its
proxy's address as its peer URL, so every peer connection to a member passes through the
proxy and the demo can cut links.

Invariants: every process it starts is in ``members`` and ``stop_all`` stops each one by
pid (SIGCONT first, for a paused one; SIGTERM, then SIGKILL after 10 s), on success and on
failure; the hub, if any, is stopped by its owner. Waits poll a condition (a readiness
check), never sleep a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.netfault.proxy import ProxyHub
from raftkv.ports import free_port

HEARTBEAT_MS = 100
ELECTION_TIMEOUT_MS = 1000  # every demo member's --election-timeout


class DemoError(RuntimeError):
    """The demo could not set up what it wanted to show (not a failed claim)."""


@dataclass
class Member:
    name: str
    data_dir: Path
    client: int = field(default_factory=free_port)
    peer: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    member_id: int = 0  # learnt from the first Status answer
    expect_exit: bool = False  # stopped on purpose: waits do not treat its exit as a failure

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client}"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "member" / "wal"


Cond = Callable[[], bool | Awaitable[bool]]


class LocalCluster:
    def __init__(self, workdir: Path, names: list[str], hub: ProxyHub | None = None,
                 env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.dir = workdir
        self.members = [Member(n, workdir / n) for n in names]
        self.hub = hub
        self.env = env or {}
        self.extra_args = extra_args or []
        if hub is not None:
            for m in self.members:
                hub.add(m.name, m.peer)
        self.cluster = ",".join(f"{m.name}={self.peer_url(m)}" for m in self.members)
        self.channels: dict[str, grpc.aio.Channel] = {}

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def peer_url(self, m: Member) -> str:
        port = self.hub.port(m.name) if self.hub is not None else m.peer
        return f"http://127.0.0.1:{port}"

    def pids(self) -> dict[int, str]:
        """Live member pids by name: how the proxies tell which member dialed."""
        return {m.proc.pid: m.name for m in self.members
                if m.proc is not None and m.proc.poll() is None}

    def log_path(self, m: Member) -> Path:
        return self.dir / f"{m.name}.log"

    def start(self, m: Member, state: str = "new") -> None:
        log = open(self.log_path(m), "ab")  # noqa: SIM115 - the child owns it
        try:
            m.proc = subprocess.Popen(
                [sys.executable, "-m", "raftkv.cli", f"--name={m.name}",
                 f"--data-dir={m.data_dir}",
                 f"--listen-client-urls=http://127.0.0.1:{m.client}",
                 f"--advertise-client-urls=http://127.0.0.1:{m.client}",
                 f"--listen-peer-urls=http://127.0.0.1:{m.peer}",
                 f"--initial-advertise-peer-urls={self.peer_url(m)}",
                 f"--listen-metrics-urls=http://127.0.0.1:{m.metrics}",
                 f"--initial-cluster={self.cluster}", f"--initial-cluster-state={state}",
                 f"--heartbeat-interval={HEARTBEAT_MS}",
                 f"--election-timeout={ELECTION_TIMEOUT_MS}", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **self.env},
            )
        finally:
            log.close()

    def start_all(self) -> None:
        for m in self.members:
            self.start(m)

    def stop_all(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(m.proc.pid, signal.SIGCONT)
                m.proc.terminate()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()

    async def close_channels(self) -> None:
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.close()
        self.channels.clear()

    def exited(self) -> list[str]:
        """Members whose process has ended (with its exit code)."""
        return [f"{m.name} (exit {m.proc.returncode})" for m in self.members
                if m.proc is not None and not m.expect_exit and m.proc.poll() is not None]

    def healthy(self, m: Member) -> bool:
        try:
            url = f"http://127.0.0.1:{m.metrics}/health"
            with urllib.request.urlopen(url, timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    async def wait(self, what: str, cond: Cond, timeout: float = 30) -> float:
        """Wait for ``cond()`` (polled every 20 ms); returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            r = cond()
            if not isinstance(r, bool):
                r = await r
            if r:
                return time.monotonic() - t0
            if self.exited():
                raise DemoError(f"member process ended: {', '.join(self.exited())}")
            if time.monotonic() - t0 > timeout:
                raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_healthy(self, timeout: float = 60) -> float:
        return await self.wait(f"{len(self.members)} healthy members",
                               lambda: all(self.healthy(m) for m in self.members), timeout)

    def channel(self, m: Member) -> grpc.aio.Channel:
        return self.channels.setdefault(m.endpoint, grpc.aio.insecure_channel(m.endpoint))

    def kv(self, m: Member) -> rpc_pb2_grpc.KVStub:
        return rpc_pb2_grpc.KVStub(self.channel(m))

    def maintenance(self, m: Member) -> rpc_pb2_grpc.MaintenanceStub:
        return rpc_pb2_grpc.MaintenanceStub(self.channel(m))

    async def status(self, m: Member) -> rpc_pb2.StatusResponse | None:
        try:
            st = await self.maintenance(m).Status(rpc_pb2.StatusRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return None
        m.member_id = st.header.member_id
        return st

    def by_id(self, member_id: int) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id and member_id), None)

    async def leader(self, among: list[Member]) -> tuple[Member, int] | None:
        """The member all of ``among`` name as leader, and its term (None: no agreement)."""
        leads: set[tuple[int, int]] = set()
        for m in among:
            st = await self.status(m)
            if st is None or st.leader == 0:
                return None
            leads.add((st.leader, st.raftTerm))
        if len(leads) != 1:
            return None
        lead, term = leads.pop()
        found = self.by_id(lead)
        return (found, term) if found is not None else None

    async def put(self, m: Member, key: bytes, value: bytes, timeout: float = 2) -> str:
        """'' when acknowledged, else the error's gRPC code and message."""
        try:
            await self.kv(m).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=timeout)
            return ""
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"

    async def get(self, m: Member, key: bytes, serializable: bool = False,
                  timeout: float = 2) -> bytes | str | None:
        """The value (None: no such key) or, on failure, the error as a str."""
        try:
            resp = await self.kv(m).Range(
                rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return bytes(resp.kvs[0].value) if resp.kvs else None

    async def read_prefix(self, m: Member, prefix: bytes) -> dict[bytes, bytes]:
        """Every key under ``prefix`` on ``m`` itself (serializable: no leader needed)."""
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        resp = await self.kv(m).Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=end, serializable=True), timeout=5)
        return {kv.key: kv.value for kv in resp.kvs}

    def log_tails(self, chars: int = 2000) -> str:
        out = []
        for m in self.members:
            p = self.log_path(m)
            if p.exists():
                out.append(f"--- {m.name} ---\n{p.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)
