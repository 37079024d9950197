"""`make demo` (``python -m raftkv.demo`` without arguments): a real three-member raftkv
cluster on loopback loses its leader and keeps every acknowledged write.

It starts three ``raftkv`` processes (temporary data dirs, free loopback ports), writes
keys through the etcd gRPC API, keeps a writer running, SIGKILLs the leader, reports the
new leader, the higher term and the write gap, restarts the killed member and waits until
it has caught up, then reads every acknowledged write back from every member. A table
and plain words say what happened; the exit status is 0 only if everything held. Every
process it starts is stopped by pid, also on failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from raftkv.demo.members import LocalCluster

PREFIX = b"/demo/"


async def run(d: LocalCluster) -> int:
    rows: list[tuple[str, str]] = []
    say = print
    d.start_all()
    took = await d.wait_healthy()
    found = await d.leader(d.members)
    assert found is not None
    lead, term = found
    say(f"Three raftkv members started on loopback; after {took * 1000:.0f} ms member "
        f"{lead.name} leads term {term}.")
    rows.append(("leader elected", f"{lead.name} (term {term})"))

    acked: dict[bytes, bytes] = {}
    for i in range(50):
        k, v = PREFIX + b"before-%03d" % i, b"v%d" % i
        if not await d.put(d.members[i % 3], k, v):
            acked[k] = v
    say(f"{len(acked)} writes acknowledged through all three members' client ports.")
    rows.append(("writes before the crash", f"{len(acked)} acknowledged"))

    survivors = [m for m in d.members if m is not lead]
    ok_times: list[float] = []
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            k, v = PREFIX + b"during-%04d" % i, b"w%d" % i
            if not await d.put(survivors[i % 2], k, v):
                acked[k] = v
                ok_times.append(time.monotonic())
            i += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    await d.wait("the writer to get going", lambda: len(ok_times) >= 20)
    assert lead.proc is not None
    killed_at = time.monotonic()
    lead.expect_exit = True
    os.kill(lead.proc.pid, signal.SIGKILL)
    lead.proc.wait()
    say(f"Member {lead.name}, the leader, is killed with SIGKILL while a client keeps writing.")
    rows.append(("leader SIGKILLed", lead.name))

    async def new_leader() -> bool:
        f = await d.leader(survivors)
        return f is not None and f[0] is not lead

    elected = await d.wait("a new leader", new_leader)
    found = await d.leader(survivors)
    assert found is not None
    new, term2 = found
    await d.wait("writes to resume", lambda: any(t > killed_at + elected for t in ok_times))
    before = max((t for t in ok_times if t < killed_at), default=killed_at)
    after = min(t for t in ok_times if t > killed_at)
    gap = after - before
    say(f"{elected * 1000:.0f} ms later member {new.name} leads term {term2} (was {term}); "
        f"no write was acknowledged for {gap * 1000:.0f} ms.")
    rows.append(("new leader", f"{new.name}, term {term2} (was {term}), after "
                               f"{elected * 1000:.0f} ms"))
    rows.append(("write gap", f"{gap * 1000:.0f} ms"))

    d.start(lead, state="existing")
    lead.expect_exit = False
    restarted = time.monotonic()

    async def caught_up() -> bool:
        st, ref = await d.status(lead), await d.status(new)
        return st is not None and ref is not None and st.leader != 0 and (
            st.raftAppliedIndex >= ref.raftIndex - 5)

    await d.wait(f"{lead.name} to catch up", caught_up)
    stop.set()
    await task
    say(f"Member {lead.name} restarts from its data dir and catches up in "
        f"{(time.monotonic() - restarted) * 1000:.0f} ms.")
    rows.append(("member restarted", f"{lead.name} caught up in "
                                     f"{(time.monotonic() - restarted) * 1000:.0f} ms"))

    async def all_have_everything() -> bool:
        for m in d.members:
            got = await d.read_prefix(m, PREFIX)
            if any(got.get(k) != v for k, v in acked.items()):
                return False
        return True

    with contextlib.suppress(RuntimeError):
        await d.wait("every member to hold every acknowledged write", all_have_everything, 20)
    missing = 0
    for m in d.members:
        got = await d.read_prefix(m, PREFIX)
        missing += sum(1 for k, v in acked.items() if got.get(k) != v)
    say(f"Every one of the {len(acked)} acknowledged writes reads back from every member."
        if not missing else f"{missing} acknowledged writes are missing or wrong!")
    rows.append(("acknowledged writes",
                 f"{len(acked) * 3 - missing}/{len(acked) * 3} reads back on 3 members"))

    checks = {
        "a leader was elected": term > 0,
        "a different member took over": new is not lead,
        "in a higher term": term2 > term,
        "writes resumed after the crash": after > killed_at,
        "no acknowledged write was lost": missing == 0,
    }
    width = max(len(a) for a, _ in rows)
    say("")
    for a, b in rows:
        say(f"  {a:<{width}}  {b}")
    say("")
    for what, ok in checks.items():
        say(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if all(checks.values()):
        say("\nEverything held.")
        return 0
    return 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="raftkv-demo-") as tmp:
        d = LocalCluster(Path(tmp), [f"m{i}" for i in range(3)])
        try:
            return asyncio.run(run(d))
        except (RuntimeError, AssertionError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            print(d.log_tails(), file=sys.stderr)
            return 1
        finally:
            with contextlib.suppress(Exception):
                d.stop_all()


if __name__ == "__main__":
    sys.exit(main())
