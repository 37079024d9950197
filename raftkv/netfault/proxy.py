"""Fault-injecting TCP proxies, one in front of each member's peer port, faults per directed
link (shared by the history harness in tests/e2e/history and by raftkv.demo).

Each member advertises its proxy's address as its peer URL, so every peer connection to a
member passes through that member's proxy. On accept, the proxy learns which member
dialed (the process owning the client socket, see :mod:`sockets`), so for a connection
between dialer D and listener L it knows that bytes going up are on link D->L and bytes
coming back are on link L->D. Each directed link has one :class:`Fault`:

- ``none``: bytes pass;
- ``delay``: bytes pass after ``delay`` seconds, in order (pure latency, no rate cap);
- ``drop`` (blackhole): bytes are discarded while the connection stays open. A connection
  that lost bytes never delivers again (real TCP never delivers a stream with holes) and
  is reset when the fault heals, so its owner reconnects cleanly;
- ``cut``: connections carrying the link are reset, and new ones are reset on accept;
- ``throttle``: bytes pass in order at most ``rate`` bytes per second per connection (a
  slow link for large transfers; small messages on other connections are not delayed).

A one-way partition is ``drop`` on one direction only; a symmetric one is ``cut`` (or
``drop``) on both. Connections from an unidentified dialer get the fault all inbound
links of the listener share, if they share one (an isolated member), else none.

The proxies run on their own thread and event loop, so they keep forwarding while the
test thread blocks (starting members, waiting for health). ``stop`` closes every
listener and connection; the hub is a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from raftkv.netfault.sockets import owner_of_connection


@dataclass(frozen=True)
class Fault:
    kind: str = "none"  # none | delay | drop | cut | throttle
    delay: float = 0.0
    rate: float = 0.0  # throttle: bytes per second, per connection

    def __str__(self) -> str:
        if self.kind == "throttle":
            return f"throttle {self.rate / 1e6:.1f}MB/s"
        return f"delay {self.delay * 1000:.0f}ms" if self.kind == "delay" else self.kind


NONE = Fault()
DROP = Fault("drop")
CUT = Fault("cut")


def delay(seconds: float) -> Fault:
    return Fault("delay", seconds)


def throttle(bytes_per_second: float) -> Fault:
    return Fault("throttle", rate=bytes_per_second)


@dataclass
class LinkStats:
    bytes_passed: int = 0
    bytes_dropped: int = 0
    resets: int = 0


@dataclass(eq=False)
class _Conn:
    src: str | None
    dst: str
    down: asyncio.StreamWriter  # to the dialer
    up: asyncio.StreamWriter | None = None  # to the member
    damaged: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def links(self) -> tuple[tuple[str, str], tuple[str, str]] | None:
        if self.src is None:
            return None
        return (self.src, self.dst), (self.dst, self.src)


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0), the way a cut cable looks to the peer."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ProxyHub:
    """All proxies of one cluster, on one background thread."""

    def __init__(self, pids: Callable[[], dict[int, str]]) -> None:
        self._pids = pids
        self._faults: dict[tuple[str, str], Fault] = {}
        self._lock = threading.Lock()
        self.stats: dict[tuple[str | None, str], LinkStats] = {}
        self._conns: set[_Conn] = set()
        self._servers: dict[str, asyncio.Server] = {}
        self._ports: dict[str, int] = {}
        self._upstream: dict[str, int] = {}
        self.unidentified = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxies",
                                        daemon=True)
        self._thread.start()

    # --- control, from any thread -------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=30)

    def add(self, name: str, upstream_port: int) -> int:
        """Start the proxy in front of ``name``'s peer port; return the port it listens on."""
        return int(self._call(self._add(name, upstream_port)))

    def port(self, name: str) -> int:
        return self._ports[name]

    @property
    def names(self) -> list[str]:
        return list(self._ports)

    def fault(self, src: str, dst: str) -> Fault:
        with self._lock:
            return self._faults.get((src, dst), NONE)

    def set(self, src: str, dst: str, fault: Fault) -> None:
        """Set the fault on the directed link src->dst."""
        self.set_many({(src, dst): fault})

    def set_many(self, faults: dict[tuple[str, str], Fault]) -> None:
        with self._lock:
            for link, f in faults.items():
                if f == NONE:
                    self._faults.pop(link, None)
                else:
                    self._faults[link] = f
        self._call(self._apply())

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
        self._call(self._apply())

    def isolate(self, name: str, fault: Fault = CUT, inbound: bool = True,
                outbound: bool = True) -> None:
        """Fault every link into and/or out of ``name``."""
        links = {}
        for other in self._ports:
            if other != name:
                if outbound:
                    links[(name, other)] = fault
                if inbound:
                    links[(other, name)] = fault
        self.set_many(links)

    def partition(self, groups: list[list[str]], fault: Fault = CUT) -> None:
        """Fault every link between members of different groups, both directions."""
        links = {}
        for i, g in enumerate(groups):
            for j, h in enumerate(groups):
                if i != j:
                    for a in g:
                        for b in h:
                            links[(a, b)] = fault
        self.set_many(links)

    def link_stats(self, src: str | None, dst: str) -> LinkStats:
        return self.stats.setdefault((src, dst), LinkStats())

    def stop(self) -> None:
        if not self._loop.is_running():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ProxyHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inside the proxy loop ----------------------------------------------------------

    async def _add(self, name: str, upstream_port: int) -> int:
        server = await asyncio.start_server(
            lambda r, w: self._accept(name, r, w), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        self._servers[name] = server
        self._ports[name] = port
        self._upstream[name] = upstream_port
        return port

    def _fault_for(self, link: tuple[str | None, str]) -> Fault:
        src, dst = link
        with self._lock:
            if src is not None:
                return self._faults.get((src, dst), NONE)
            inbound = {self._faults.get((o, dst), NONE) for o in self._ports if o != dst}
        return inbound.pop() if len(inbound) == 1 else NONE

    def _blocked(self, conn: _Conn) -> bool:
        up = self._fault_for((conn.src, conn.dst))
        if conn.src is None:
            return up.kind == "cut"
        down = self._fault_for((conn.dst, conn.src))
        return up.kind == "cut" or down.kind == "cut"

    def _dropping(self, conn: _Conn) -> bool:
        if self._fault_for((conn.src, conn.dst)).kind == "drop":
            return True
        return conn.src is not None and self._fault_for((conn.dst, conn.src)).kind == "drop"

    async def _apply(self) -> None:
        for conn in list(self._conns):
            if self._blocked(conn) or (conn.damaged and not self._dropping(conn)):
                self._kill(conn, count=True)

    def _kill(self, conn: _Conn, count: bool = False) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            if count:
                self.link_stats(conn.src, conn.dst).resets += 1
            _reset(conn.down)
            _reset(conn.up)
            for t in conn.tasks:
                t.cancel()

    def _identify(self, writer: asyncio.StreamWriter, dst: str) -> str | None:
        peer = writer.get_extra_info("peername")
        pids = self._pids()
        pid = owner_of_connection(int(peer[1]), self._ports[dst], pids)
        return pids.get(pid) if pid is not None else None

    async def _accept(self, dst: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        src = self._identify(writer, dst)
        if src is None:
            self.unidentified += 1
        conn = _Conn(src, dst, writer)
        if self._blocked(conn):
            self.link_stats(src, dst).resets += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self._upstream[dst])
        except OSError:
            _reset(writer)
            return
        conn.up = up_writer
        self._conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._pump(conn, reader, up_writer, (src, dst))),
            asyncio.ensure_future(self._pump(conn, up_reader, writer, (dst, src))),
        ]
        await asyncio.gather(*conn.tasks, return_exceptions=True)
        self._kill(conn)

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, link: tuple[str | None, str | None]) -> None:
        src, dst = link
        stat_link: tuple[str | None, str] = (src, dst or "?")
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer))
        free_at = 0.0  # throttle: when this connection's link is next free
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if src is None or dst is None:
                    # unidentified dialer: only inbound-isolation faults apply, both ways
                    fault = self._fault_for((None, conn.dst))
                else:
                    fault = self._fault_for((src, dst))
                stats = self.link_stats(*stat_link)
                if fault.kind in ("drop", "cut") or conn.damaged:
                    conn.damaged = True
                    stats.bytes_dropped += len(data)
                    continue
                stats.bytes_passed += len(data)
                now = time.monotonic()
                due = now + (fault.delay if fault.kind == "delay" else 0.0)
                if fault.kind == "throttle" and fault.rate > 0:
                    free_at = max(free_at, now) + len(data) / fault.rate
                    due = free_at
                queue.put_nowait((due, data))
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()

    @staticmethod
    async def _send(queue: asyncio.Queue[tuple[float, bytes] | None],
                    writer: asyncio.StreamWriter) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the injected latency itself
            writer.write(data)
            await writer.drain()

    async def _shutdown(self) -> None:
        for server in self._servers.values():
            server.close()
        for conn in list(self._conns):
            self._kill(conn)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
