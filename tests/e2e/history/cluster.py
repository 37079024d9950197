"""A cluster of etcd-flag servers whose peer traffic goes through per-link fault proxies.

Wraps :class:`tests.support.etcd.Cluster` (not modified): each member advertises its
proxy's URL as its peer URL, and the proxies identify dialers by the pids of the current
member processes. Adds what the nemesis needs: find the leader, kill/restart all,
remove a member and re-add it with a fresh data dir (``--initial-cluster-state=existing``).

Invariant: ``stop`` (also via ``with``) stops every member process and every proxy, on
success and on failure alike.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from raftkv.netfault.proxy import ProxyHub
from tests.e2e.history import etcdapi
from tests.support.etcd import Cluster, Member
from tests.support.proc import wait_until


class ProxiedCluster:
    def __init__(self, workdir: Path, size: int, binary: Path | None = None,
                 extra_args: list[str] | None = None, health_on_metrics: bool = False) -> None:
        self.workdir = workdir
        self.hub = ProxyHub(pids=self._pids)
        self.cluster = Cluster(
            workdir, size, binary=binary, token=f"history-{uuid.uuid4().hex[:8]}",
            extra_args=["--snapshot-count=500", *(extra_args or [])],
            peer_url_for=self.peer_url, health_on_metrics=health_on_metrics,
        )
        try:
            for m in self.cluster.members:
                self.hub.add(m.name, m.peer_port)
        except BaseException:
            self.hub.stop()
            raise

    # --- identity -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        return self.cluster.members

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def endpoints(self) -> list[str]:
        return self.cluster.endpoints

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def peer_url(self, m: Member) -> str:
        return f"http://127.0.0.1:{self.hub.port(m.name)}"

    def _pids(self) -> dict[int, str]:
        return {m.proc.pid: m.name for m in self.members
                if m.proc is not None and m.proc.alive()}

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> ProxiedCluster:
        try:
            self.cluster.start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.cluster.stop()
        finally:
            self.hub.stop()

    def __enter__(self) -> ProxiedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        self.cluster.wait_healthy(timeout)

    def logs(self) -> str:
        return self.cluster.logs()

    # --- faults on processes (blocking; call through asyncio.to_thread) ----------------

    def kill(self, name: str) -> None:
        self.cluster.kill(self.member(name))

    def restart(self, name: str) -> None:
        self.cluster.restart(self.member(name), wait=True)

    def pause(self, name: str) -> None:
        self.cluster.pause(self.member(name))

    def resume(self, name: str) -> None:
        self.cluster.resume(self.member(name))

    def kill_all(self) -> None:
        for m in self.members:
            self.cluster.kill(m)

    def restart_all(self) -> None:
        for m in self.members:
            self.cluster.restart(m, wait=False)
        for m in self.members:
            wait_until(m.serving, 60, f"{m.name} serving after restart")

    # --- queries ------------------------------------------------------------------------

    async def leader(self, timeout: float = 10.0) -> str:
        """The member most live members name as leader (waits until one is named)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            votes: Counter[str] = Counter()
            ids: dict[int, str] = {}
            for m in self.members:
                if m.proc is None or not m.proc.alive():
                    continue
                try:
                    st = await etcdapi.status(m.client_url, timeout=0.5)
                except Exception:
                    continue
                ids[st.header.member_id] = m.name
                if st.leader:
                    votes[str(st.leader)] += 1
            for leader_id, _ in votes.most_common():
                name = ids.get(int(leader_id))
                if name is not None:
                    return name
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no member names a leader")
            await asyncio.sleep(0.1)  # polling for an election to finish

    async def member_id(self, name: str) -> int:
        for ep in self.endpoints:
            try:
                members = await etcdapi.member_list(ep)
            except Exception:
                continue
            for mem in members:
                if mem.name == name or self.peer_url(self.member(name)) in mem.peerURLs:
                    return int(mem.ID)
        raise LookupError(f"{name} not in any member list")

    async def remove_and_readd(self, name: str) -> None:
        """Remove ``name`` from the cluster, wipe it, add it back, start it as a new member."""
        m = self.member(name)
        mid = await self.member_id(name)
        others = [x.client_url for x in self.members if x.name != name]
        await _first_ok(lambda ep: etcdapi.member_remove(ep, mid), others,
                        done_if="member not found")
        await asyncio.to_thread(self.cluster.kill, m)
        shutil.rmtree(m.data_dir, ignore_errors=True)
        await _first_ok(lambda ep: etcdapi.member_add(ep, self.peer_url(m)), others,
                        done_if="Peer URLs already exists")
        await asyncio.to_thread(self.cluster.start_member, m, "existing")
        await asyncio.to_thread(wait_until, m.serving, 60, f"{name} serving after re-add")


async def _first_ok(call: Callable[[str], Awaitable[object]], endpoints: list[str],
                    done_if: str, timeout: float = 30.0) -> None:
    """Try ``call(endpoint)`` on each endpoint until one succeeds (membership changes
    can be refused while the cluster settles: etcd's strict reconfiguration check wants
    the leader connected to the members for 5 s first). An error containing ``done_if`` means an
    earlier attempt that timed out did take effect."""
    last: BaseException | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ep in endpoints:
            try:
                await call(ep)
                return
            except Exception as exc:
                if done_if in str(exc):
                    return
                last = exc
        await asyncio.sleep(0.2)  # the cluster settles after an election or config change
    raise RuntimeError(f"membership change failed on {endpoints}: {last!r}")
