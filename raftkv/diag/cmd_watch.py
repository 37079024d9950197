"""``diag watch``: poll status, report leader and term changes and leaderless spells.

Read-only by default. ``--probe-writes`` also writes a leased key under ``--probe-prefix``
every tick and reports the write gap around an election. A live table on a terminal,
one plain line per event otherwise. ``--duration`` and ``--count`` (elections) bound it.

Invariants: polls are ``--interval`` apart and each is bounded by short timeouts, so a
dead or paused member cannot stall the watch; the probe lease is revoked on exit
(including Ctrl-C and SIGTERM), and expires on its own if diag is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from raftkv.client import EndpointStatus, EtcdClient, EtcdError
from raftkv.diag.common import EXIT_CODES, app, console, duration_option, err, opts
from raftkv.diag.exitcodes import ExitCode
from raftkv.diag.gather import resolve_endpoints
from raftkv.diag.options import Options
from raftkv.diag.probe import WriteProbe
from raftkv.diag.tracker import Event, LeaderTracker
from raftkv.diag.units import fmt_duration, hex_id


def _ts() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Watcher:
    def __init__(self, o: Options, interval: float, probe: bool, prefix: str, ttl: int) -> None:
        self.o = o
        self.interval = interval
        self.want_probe = probe
        self.prefix = prefix
        self.ttl = ttl
        self.clients: list[EtcdClient] = []
        self.names: dict[int, str] = {}
        self.tracker = LeaderTracker()
        self.probe: WriteProbe | None = None
        self.last: dict[str, EndpointStatus | EtcdError] = {}
        self.lines: deque[str] = deque(maxlen=12)
        self.longest_leaderless = 0.0
        self.stop = asyncio.Event()
        self.live = False

    def name(self, member_id: int) -> str:
        return f"{self.names.get(member_id, '?')} ({hex_id(member_id)})" if member_id else "none"

    def describe(self, e: Event) -> str:
        if e.kind == "initial":
            if e.leader:
                return f"leader {self.name(e.leader)} term {e.term}"
            return f"no leader (highest term {e.term})"
        if e.kind == "unreachable":
            return e.detail
        if e.kind == "back":
            return f"{e.endpoint} answering again"
        if e.kind == "leader-lost":
            return (f"leader lost: no member reports itself leader "
                    f"(was {self.name(e.previous_leader)} term {e.previous_term})")
        verb = "elected" if e.kind == "elected" else "re-elected"
        lost = e.leaderless_for or 0.0
        lost_txt = (f"no leader for {fmt_duration(lost)}" if lost > 0
                    else f"no leaderless poll seen (< {fmt_duration(self.interval)})")
        return (f"{verb} {self.name(e.leader)} term {e.term} "
                f"(was {self.name(e.previous_leader)} term {e.previous_term}); {lost_txt}")

    def say(self, text: str) -> None:
        line = f"{_ts()} {text}"
        self.lines.append(line)
        if not self.live:
            print(line, flush=True)

    async def _poll_one(self, c: EtcdClient) -> EndpointStatus | EtcdError:
        try:
            return await c.status()
        except EtcdError as exc:
            return exc

    async def _refresh_names(self) -> None:
        for c in self.clients:
            with contextlib.suppress(EtcdError):
                ml = await c.member_list()
                self.names.update({m.id: m.name for m in ml.members})
                return

    def table(self) -> Group:
        t = Table(box=box.SIMPLE, title="diag watch")
        for col in ("ENDPOINT", "ID", "LEADER", "TERM", "RAFT INDEX", "APPLIED", "STATE"):
            t.add_column(col)
        for ep, s in self.last.items():
            if isinstance(s, EndpointStatus):
                t.add_row(ep, hex_id(s.member_id), "yes" if s.is_leader else self.name(s.leader),
                          str(s.raft_term), str(s.raft_index), str(s.raft_applied_index), "ok")
            else:
                t.add_row(ep, "-", "-", "-", "-", "-", s.kind.value)
        return Group(t, Text("\n".join(self.lines)))

    async def _probe_loop(self) -> None:
        assert self.probe is not None
        while not self.stop.is_set():
            gap = await self.probe.tick()
            if gap is not None:
                self.say(f"writes resumed after a {fmt_duration(gap)} write gap "
                         f"({self.probe.failures} probe writes failed so far)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.interval)

    async def run(self, duration: float | None, count: int | None, live: bool) -> None:
        self.live = live
        endpoints, errors = await resolve_endpoints(self.o)
        for e in errors:
            err(str(e))
        if not endpoints:
            raise EtcdError(errors[0].kind, errors[0].endpoint, errors[0].detail)
        short = min(self.o.command_timeout, max(2 * self.interval, 0.5))
        dial = min(self.o.dial_timeout, max(2 * self.interval, 0.5))
        self.clients = [EtcdClient(ep, self.o.tls, dial, short, self.o.credentials)
                        for ep in endpoints]
        await self._refresh_names()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        start = time.monotonic()
        probe_task = None
        if self.want_probe:
            self.probe = WriteProbe(self.clients, self.prefix, self.ttl,
                                    report_after=max(3 * self.interval, 0.3))
            probe_task = asyncio.create_task(self._probe_loop())
        live_view = Live(self.table(), console=console(), auto_refresh=False) if live else None
        try:
            if live_view is not None:
                live_view.start()
            while not self.stop.is_set():
                now = time.monotonic()
                results = await asyncio.gather(*(self._poll_one(c) for c in self.clients))
                self.last = {c.name: r for c, r in zip(self.clients, results, strict=True)}
                if any(isinstance(r, EndpointStatus) and r.leader and r.leader not in self.names
                       for r in results):
                    await self._refresh_names()
                for ev in self.tracker.observe(now, self.last):
                    if ev.leaderless_for:
                        self.longest_leaderless = max(self.longest_leaderless, ev.leaderless_for)
                    self.say(self.describe(ev))
                if live_view is not None:
                    live_view.update(self.table(), refresh=True)
                if duration is not None and now - start >= duration:
                    break
                if count is not None and self.tracker.elections >= count:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.interval)
        finally:
            self.stop.set()
            if probe_task is not None:
                await probe_task
            if self.probe is not None:
                await self.probe.close()
            if live_view is not None:
                live_view.stop()
            for c in self.clients:
                await c.close()
        summary = (f"watched {fmt_duration(time.monotonic() - start)}: "
                   f"{self.tracker.elections} election(s), longest leaderless "
                   f"{fmt_duration(self.longest_leaderless)}")
        if self.probe is not None:
            summary += (f", {self.probe.writes} probe writes ok, {self.probe.failures} failed, "
                        f"longest write gap {fmt_duration(self.probe.longest_gap)}")
        self.live = False
        self.say(summary)


@app.command(epilog=EXIT_CODES)
def watch(
    ctx: typer.Context,
    interval: Annotated[str, typer.Option(help="poll interval")] = "200ms",
    duration: Annotated[str | None, typer.Option(help="stop after this long")] = None,
    count: Annotated[int | None, typer.Option(
        help="stop after this many elections", min=1)] = None,
    probe_writes: Annotated[bool, typer.Option(
        "--probe-writes", help="also write a leased probe key each tick")] = False,
    probe_prefix: Annotated[str, typer.Option(
        help="key prefix for the probe key")] = "__diag_probe/",
    probe_ttl: Annotated[int, typer.Option(help="probe lease TTL, seconds", min=2)] = 10,
    live: Annotated[bool | None, typer.Option(
        "--live/--plain", help="live table (default on a terminal) or plain lines")] = None,
) -> None:
    """Poll status; print a line per leader or term change, with how long there was no leader."""
    o = opts(ctx)
    if not probe_prefix:
        raise typer.BadParameter("--probe-prefix must not be empty")
    w = Watcher(o, duration_option(interval), probe_writes, probe_prefix, probe_ttl)
    dur = duration_option(duration) if duration is not None else None
    use_live = sys.stdout.isatty() if live is None else live
    try:
        asyncio.run(w.run(dur, count, use_live))
    except EtcdError as exc:
        err(str(exc))
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    raise typer.Exit(ExitCode.OK)
