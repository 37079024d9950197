"""The nemesis: faults injected on a schedule drawn from a seed.

A scenario names one fault (or ``mixed``: a random one each round). Each round waits a
quiet interval, injects, holds the fault, heals, and waits until every member is healthy
again, so the next round starts from a working cluster. Every round is logged as a line
("t=3.2s kill-leader m1 (held 1.4s)") that ends up in the history and the failure file.

Faults: SIGKILL of the leader or a random member then restart; SIGSTOP then SIGCONT of the
leader or a random member; symmetric partitions (cut) isolating the leader or splitting
the cluster into a random majority and minority; one-way partitions (the leader's
outbound, or inbound, links dropped); blackholes (all of the leader's links dropped);
latency on the leader's links; all members killed at once and restarted; a member
removed and added back with a fresh data dir.

Invariant: whatever happens (cancellation, errors), ``run`` leaves no fault in place:
links healed, paused members resumed, killed members restarted.
"""

from __future__ import annotations

import asyncio
import random
import time

from raftkv.netfault.proxy import CUT, DROP, delay
from tests.e2e.history.cluster import ProxiedCluster

FAULTS = [
    "kill-leader", "kill-random", "pause-leader", "pause-random", "partition-leader",
    "partition-split", "oneway-leader-out", "oneway-leader-in", "blackhole-leader",
    "delay-leader", "kill-all", "member-readd",
]
SCENARIOS = [*FAULTS, "mixed"]


class Nemesis:
    def __init__(self, cluster: ProxiedCluster, seed: int, scenario: str,
                 hold: tuple[float, float] = (1.0, 2.5),
                 quiet: tuple[float, float] = (0.5, 1.5)) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.scenario = scenario
        self.hold = hold
        self.quiet = quiet
        self.log: list[str] = []
        self._t0 = time.monotonic()
        self._paused: set[str] = set()
        self._killed: set[str] = set()

    def _note(self, text: str) -> None:
        self.log.append(f"t={time.monotonic() - self._t0:.1f}s {text}")

    async def run(self, stop: asyncio.Event, rounds: int | None = None) -> list[str]:
        done = 0
        try:
            while not stop.is_set() and (rounds is None or done < rounds):
                if await _wait(stop, self.rng.uniform(*self.quiet)):
                    break
                fault = self.scenario if self.scenario != "mixed" else self.rng.choice(FAULTS)
                await self.inject(fault, stop)
                done += 1
        finally:
            await self.heal_all()
        return self.log

    async def inject(self, fault: str, stop: asyncio.Event) -> None:
        hold = self.rng.uniform(*self.hold)
        c = self.cluster
        names = c.names
        if fault in ("kill-leader", "kill-random"):
            victim = await c.leader() if fault == "kill-leader" else self.rng.choice(names)
            self._killed.add(victim)
            await asyncio.to_thread(c.kill, victim)
            self._note(f"{fault} {victim} (down {hold:.1f}s)")
            await _wait(stop, hold, force=True)
            await asyncio.to_thread(c.restart, victim)
            self._killed.discard(victim)
        elif fault in ("pause-leader", "pause-random"):
            victim = await c.leader() if fault == "pause-leader" else self.rng.choice(names)
            self._paused.add(victim)
            await asyncio.to_thread(c.pause, victim)
            self._note(f"{fault} {victim} (paused {hold:.1f}s)")
            await _wait(stop, hold, force=True)
            await asyncio.to_thread(c.resume, victim)
            self._paused.discard(victim)
        elif fault in ("partition-leader", "oneway-leader-out", "oneway-leader-in",
                       "blackhole-leader", "delay-leader"):
            leader = await c.leader()
            if fault == "partition-leader":
                c.hub.isolate(leader, CUT)
            elif fault == "oneway-leader-out":
                c.hub.isolate(leader, DROP, inbound=False)
            elif fault == "oneway-leader-in":
                c.hub.isolate(leader, DROP, outbound=False)
            elif fault == "blackhole-leader":
                c.hub.isolate(leader, DROP)
            else:
                c.hub.isolate(leader, delay(self.rng.uniform(0.05, 0.3)))
            self._note(f"{fault} {leader} ({hold:.1f}s)")
            await _wait(stop, hold, force=True)
            c.hub.heal()
        elif fault == "partition-split":
            shuffled = names[:]
            self.rng.shuffle(shuffled)
            cut_at = self.rng.randint(1, len(names) // 2)
            groups = [shuffled[:cut_at], shuffled[cut_at:]]
            c.hub.partition(groups, CUT)
            self._note(f"{fault} {groups[0]} | {groups[1]} ({hold:.1f}s)")
            await _wait(stop, hold, force=True)
            c.hub.heal()
        elif fault == "kill-all":
            self._killed.update(names)
            await asyncio.to_thread(c.kill_all)
            self._note(f"{fault} (down {hold:.1f}s)")
            await _wait(stop, hold, force=True)
            await asyncio.to_thread(c.restart_all)
            self._killed.clear()
        elif fault == "member-readd":
            victim = self.rng.choice(names)
            started = time.monotonic()
            self._killed.add(victim)
            await c.remove_and_readd(victim)
            self._killed.discard(victim)
            self._note(f"{fault} {victim} (removed, re-added with a fresh data dir in "
                       f"{time.monotonic() - started:.1f}s)")
        else:
            raise ValueError(fault)
        await asyncio.to_thread(c.wait_healthy, 60.0)

    async def heal_all(self) -> None:
        c = self.cluster
        c.hub.heal()
        for name in list(self._paused):
            await asyncio.to_thread(c.resume, name)
        self._paused.clear()
        for name in list(self._killed):
            await asyncio.to_thread(c.restart, name)
        self._killed.clear()


async def _wait(stop: asyncio.Event, seconds: float, force: bool = False) -> bool:
    """Wait ``seconds`` (the fault's scheduled length), or less if ``stop`` is set and not
    ``force``. Returns whether ``stop`` is set."""
    if force:
        await asyncio.sleep(seconds)
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True

