"""``python -m raftkv.demo fencing``: a lock holder paused past its lease writes late; a
fencing token (the lock key's create_revision) makes the store refuse that write.

On three real members, two rounds, each with two lock-client processes
(:mod:`raftkv.demo.lockclient`): client A takes the lock and is paused with SIGSTOP just
before it writes; client B asks for the lock at once and gets it only when A's lease has
expired (A's lock key is gone), with a higher token, and writes; A is resumed with SIGCONT
and writes with its old token. Round 1 writes through the fenced Txn (A's write must be
refused, B's data must survive); round 2 writes with plain puts (A's late write lands and
destroys B's newer data: what fencing prevents). ``--no-fencing-check`` runs round 1
without the check too, and the demo reports the overwrite and fails.

Each claim has its own exit code (:data:`CLAIMS`). Invariant: every client process is
resumed and stopped by pid on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftkv.demo.lockclient import pad
from raftkv.demo.members import DemoError, LocalCluster, Member
from raftkv.demo.report import EXIT_SETUP, Report

CLAIMS = {
    20: "B waits while A's lease lives, gets the lock once it expired, with a higher token",
    21: "B's write is accepted",
    22: "fenced: A's late write with its old token is refused",
    23: "fenced: the protected key still holds B's newer data",
    24: "unfenced: A's late write lands and overwrites B's newer data",
}


@dataclass
class Client:
    name: str
    proc: asyncio.subprocess.Process

    async def event(self, want: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise DemoError(f"client {self.name} did not report {want!r} in {timeout:.0f} s") \
                from None
        if not line:
            raise DemoError(f"client {self.name} exited before {want!r}")
        ev: dict[str, Any] = json.loads(line)
        if ev.get("event") != want:
            raise DemoError(f"client {self.name}: expected {want!r}, got {ev}")
        return ev

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"write\n")
        await self.proc.stdin.drain()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    async def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()


class Fencing:
    def __init__(self, workdir: Path, ttl: int) -> None:
        self.c = LocalCluster(workdir, ["m1", "m2", "m3"])
        self.ttl = ttl
        self.report = Report()
        self.clients: list[Client] = []

    async def client(self, m: Member, name: str, prefix: bytes, fenced: bool) -> Client:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "raftkv.demo.lockclient", f"--endpoint={m.endpoint}",
            f"--prefix={prefix.decode()}", f"--name={name}", f"--ttl={self.ttl}",
            f"--value=written by {name}", *([] if fenced else ["--unfenced"]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        cl = Client(name, proc)
        self.clients.append(cl)
        return cl

    async def round(self, label: str, prefix: bytes, fenced: bool) -> dict[str, Any]:
        """One round; returns what happened (tokens, write results, data before/after)."""
        c, say = self.c, print
        m1, m2 = c.members[0], c.members[1]
        for k, v in ((b"max-token", pad(0)), (b"data", b"initial")):
            if await c.put(m1, prefix + k, v):
                raise DemoError(f"could not initialise {(prefix + k).decode()}")
        say(f"\n{label}: the protected key {(prefix + b'data').decode()} is written "
            + ("through the fenced Txn (token compared with the highest seen)." if fenced
               else "with plain puts (no token check)."))
        a = await self.client(m1, "A", prefix, fenced)
        ev_a = await a.event("locked", 30)
        a.signal(signal.SIGSTOP)
        paused = time.monotonic()
        await a.go()  # A's write is due the moment it runs again
        say(f"  A holds the lock with token {ev_a['token']} (lease TTL {ev_a['ttl']} s as "
            "granted) and is paused (SIGSTOP) just before it writes.")

        a_key = ev_a["key"].encode()
        a_held = await c.get(m2, a_key) is not None
        b = await self.client(m2, "B", prefix, fenced)
        ev_b = await b.event("locked", self.ttl * 3 + 30)
        waited = time.monotonic() - paused
        a_gone = await c.get(m2, a_key) is None
        say(f"  B asks for the lock while A's lock key is {'still there' if a_held else 'gone'};"
            f" it gets the lock {waited:.1f} s into A's pause, A's lock key "
            f"{'gone (its lease expired)' if a_gone else 'STILL THERE'}; B's token is "
            f"{ev_b['token']}.")
        await b.go()
        wb = await b.event("wrote", 30)
        data_b = await c.get(m2, prefix + b"data")
        say("  B writes: "
            f"{'accepted' if wb['accepted'] else 'refused'} ({wb['detail']}).")
        a.signal(signal.SIGCONT)
        wa = await a.event("wrote", 30)
        data_end = await c.get(m2, prefix + b"data")
        say(f"  A resumes (SIGCONT) after {time.monotonic() - paused:.1f} s, still believing "
            f"it holds the lock, and writes with token {ev_a['token']}: "
            f"{'ACCEPTED' if wa['accepted'] else 'refused'} ({wa['detail']}); the key now "
            f"holds {data_end!r}.")
        for cl in (a, b):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cl.proc.wait(), 10)
        return {"a": ev_a, "b": ev_b, "wa": wa, "wb": wb, "data_b": data_b,
                "data_end": data_end, "waited": waited, "waited_for_a": a_held and a_gone}

    async def run(self, fenced_first: bool) -> Report:
        c, r = self.c, self.report
        c.start_all()
        took = await c.wait_healthy()
        print(f"Three raftkv members on loopback, healthy after {took:.1f} s. Lock: an "
              f"etcdctl-lock-style lease lock (TTL {self.ttl} s); token: the lock key's "
              "create_revision.")
        one = await self.round("Round 1" + ("" if fenced_first else " (--no-fencing-check)"),
                               b"/fencing/round1/", fenced_first)
        two = await self.round("Round 2", b"/fencing/round2/", False)
        for label, x in (("round 1", one), ("round 2", two)):
            r.row(f"{label}: tokens", f"A {x['a']['token']}, B {x['b']['token']} (B got the "
                                      f"lock {x['waited']:.1f} s into A's pause)")
            r.row(f"{label}: A's late write", ("accepted: " if x["wa"]["accepted"] else
                                               "refused: ") + x["wa"]["detail"])
            r.row(f"{label}: protected key", f"after B {x['data_b']!r}, at the end "
                                             f"{x['data_end']!r}")
        higher = all(x["b"]["token"] > x["a"]["token"] and x["waited_for_a"]
                     for x in (one, two))
        r.claim(20, CLAIMS[20], higher,
                f"round 1: {one['a']['token']} then {one['b']['token']}; round 2: "
                f"{two['a']['token']} then {two['b']['token']}")
        b_ok = all(x["wb"]["accepted"] and x["data_b"] == b"written by B" for x in (one, two))
        r.claim(21, CLAIMS[21], b_ok, "in both rounds" if b_ok else "not in both rounds")
        r.claim(22, CLAIMS[22], not one["wa"]["accepted"],
                one["wa"]["detail"] if not one["wa"]["accepted"] else
                f"accepted ({one['wa']['detail']}): A's write overwrote B's newer data")
        r.claim(23, CLAIMS[23], one["data_end"] == b"written by B",
                f"it holds {one['data_end']!r}")
        overwritten = two["wa"]["accepted"] and two["data_end"] == b"written by A"
        r.claim(24, CLAIMS[24], overwritten,
                f"it holds {two['data_end']!r}: B's write is lost" if overwritten else
                f"it holds {two['data_end']!r}")
        return r


async def _main(workdir: Path, ttl: int, fenced_first: bool) -> int:
    demo = Fencing(workdir, ttl)
    try:
        report = await demo.run(fenced_first)
    except (DemoError, OSError) as exc:
        print(f"FAILED to set up the demo: {exc}", file=sys.stderr)
        print(demo.c.log_tails(), file=sys.stderr)
        return EXIT_SETUP
    finally:
        for cl in demo.clients:
            await cl.stop()
        await demo.c.close_channels()
        demo.c.stop_all()
    print(report.render())
    return report.exit_code()


def main(ttl: int = 2, fenced_first: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="raftkv-fencing-") as tmp:
        return asyncio.run(_main(Path(tmp), ttl, fenced_first))
