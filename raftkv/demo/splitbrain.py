"""``python -m raftkv.demo split-brain``: five real members cut 2|3 with the old leader in
the minority; the minority commits nothing, the majority elects a leader and keeps
writing, and after healing the old leader's uncommitted entries are replaced.

Steps: start m1..m5 behind per-link TCP proxies (:mod:`raftkv.netfault.proxy`); move the
leadership to m1 if the leader is not m1 or m2; write; cut every link between {m1, m2}
and {m3, m4, m5}; put to the old leader at once (it still believes it leads, so the
entries enter its log, but no majority acknowledges them); let the majority elect a
leader and write, including a new value of a key the minority also holds; ask the old
leader for that key (a linearizable read); heal; wait until the old leader has caught
up; read its log (a copy of its WAL) at the indexes its un-acknowledged puts had.
``etcdctl endpoint status`` is shown before, during and after the cut.

Each claim has its own exit code (:data:`CLAIMS`). With the test-only switch
``RAFTKV_UNSAFE_TEST_ONLY_DEPOSED_LEADER_SERVES`` (``--unsafe-deposed-leader-serves``,
refused outside pytest) the old leader keeps claiming leadership and answers the read
with the old value, and the demo reports exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aetcd.rpc import rpc_pb2

from raftkv.demo import outside, walview
from raftkv.demo.members import ELECTION_TIMEOUT_MS, DemoError, LocalCluster, Member
from raftkv.demo.report import EXIT_SETUP, Report
from raftkv.netfault.proxy import CUT, ProxyHub
from raftkv.server import unsafe

PREFIX = b"/split/"
SHARED = PREFIX + b"shared"
MINORITY_PUTS = 3
ELECTION_S = ELECTION_TIMEOUT_MS / 1000

CLAIMS = {
    10: "the minority commits nothing: puts to the old leader are not acknowledged",
    11: "the minority's commit index does not move while it is cut off",
    12: "the majority elects a leader in a higher term",
    13: "the majority keeps writing",
    14: "one leader at a time: the old leader stops claiming leadership",
    15: "no stale read: the old leader does not answer a linearizable read with old data",
    16: "after healing, the old leader's uncommitted entries are replaced by the majority's",
    17: "the minority's un-acknowledged puts are on no member",
    18: "every put the majority acknowledged is on all five members",
}

Say = Callable[[str], None]


class SplitBrain:
    def __init__(self, workdir: Path, unsafe_serves: bool, say: Say) -> None:
        self.say = say
        self.report = Report()
        self.hub = ProxyHub(pids=lambda: self.c.pids())
        env = {unsafe.DEPOSED_LEADER_SERVES: "1"} if unsafe_serves else {}
        self.c = LocalCluster(workdir, [f"m{i}" for i in range(1, 6)], hub=self.hub, env=env,
                              extra_args=["--experimental-wal-segment-bytes=1048576"])
        self.minority = self.c.members[:2]
        self.majority = self.c.members[2:]

    def claim(self, code: int, held: bool, detail: str = "") -> bool:
        return self.report.claim(code, CLAIMS[code], held, detail)

    async def show_outside(self, when: str) -> None:
        names = {m.endpoint: m.name for m in self.c.members}
        ids = {m.member_id: m.name for m in self.c.members if m.member_id}
        self.say(f"\n`etcdctl endpoint status`, {when}:")
        for line in await outside.endpoint_status(names, ids):
            self.say(f"    {line}")
        self.say("")

    async def statuses(self, members: list[Member]) -> dict[str, rpc_pb2.StatusResponse]:
        out = {}
        for m in members:
            st = await self.c.status(m)
            if st is not None:
                out[m.name] = st
        return out

    async def lead_in_minority(self) -> tuple[Member, int]:
        c = self.c
        await c.wait("a leader all five agree on",
                     lambda: self._agreed(c.members), timeout=30)
        found = await c.leader(c.members)
        assert found is not None
        lead, term = found
        if lead in self.minority:
            return lead, term
        target = self.minority[0]
        self.say(f"{lead.name} leads; leadership is moved to {target.name} (MoveLeader) so the "
                 "leader is in the minority-to-be.")
        await c.maintenance(lead).MoveLeader(
            rpc_pb2.MoveLeaderRequest(targetID=target.member_id), timeout=10)

        async def moved() -> bool:
            f = await c.leader(c.members)
            return f is not None and f[0] in self.minority

        await c.wait("the leadership to move into the minority", moved, timeout=20)
        found = await c.leader(c.members)
        assert found is not None
        return found

    async def _agreed(self, among: list[Member]) -> bool:
        return await self.c.leader(among) is not None

    async def run(self) -> Report:
        c, r, say = self.c, self.report, self.say
        c.start_all()
        took = await c.wait_healthy()
        say(f"Five raftkv members on loopback, every peer link through a TCP proxy; healthy "
            f"after {took:.1f} s.")
        old, term = await self.lead_in_minority()
        r.row("old leader", f"{old.name}, term {term}")
        acked: dict[bytes, bytes] = {}
        for i in range(20):
            k, v = PREFIX + b"before-%02d" % i, b"b%d" % i
            if not await c.put(old, k, v):
                acked[k] = v
        if await c.put(old, SHARED, b"old value"):
            raise DemoError("the shared key could not be written before the cut")
        say(f"{old.name} leads term {term}; {len(acked)} puts and {SHARED.decode()}='old value' "
            "are acknowledged.")
        await self.show_outside("before the cut")

        before_log = walview.read_log(old.wal_dir)
        last_before = max(before_log, default=0)
        commit_at_cut = {n: st.raftIndex for n, st in (await self.statuses(self.minority)).items()}
        self.hub.partition([[m.name for m in self.minority], [m.name for m in self.majority]],
                           CUT)
        cut_at = time.monotonic()
        say(f"Cut: every link between {{m1, m2}} and {{m3, m4, m5}} is reset by the proxies; "
            f"{old.name}, the leader, is in the minority.")
        minority_keys = [PREFIX + b"minority-%d" % i for i in range(MINORITY_PUTS)]
        results = await asyncio.gather(*(c.put(old, k, b"never acknowledged", timeout=3)
                                         for k in minority_keys))
        refused = [x for x in results if x]
        say(f"{MINORITY_PUTS} puts to {old.name}: " +
            "; ".join(x or "ACKNOWLEDGED" for x in results))
        self.claim(10, len(refused) == MINORITY_PUTS,
                   f"{len(refused)} of {MINORITY_PUTS} not acknowledged")
        during_log = walview.read_log(old.wal_dir)
        uncommitted = {i: e for i, e in during_log.items()
                       if i > last_before and walview.put_key(e) in minority_keys}

        async def majority_leader() -> bool:
            f = await c.leader(self.majority)
            return f is not None and f[1] > term and f[0] in self.majority

        await c.wait("the majority to elect a leader", majority_leader, timeout=30)
        found = await c.leader(self.majority)
        assert found is not None
        new, new_term = found
        elected_after = time.monotonic() - cut_at
        self.claim(12, new_term > term, f"{new.name} leads term {new_term} (was {term}), "
                                        f"{elected_after:.1f} s after the cut")
        r.row("new leader (majority)", f"{new.name}, term {new_term}, {elected_after:.1f} s "
                                       "after the cut")
        majority_acked = 0
        for i in range(20):
            k, v = PREFIX + b"during-%02d" % i, b"d%d" % i
            if not await c.put(new, k, v):
                acked[k] = v
                majority_acked += 1
        shared_err = await c.put(new, SHARED, b"new value")
        if not shared_err:
            majority_acked += 1
        self.claim(13, majority_acked == 21, f"{majority_acked} of 21 puts acknowledged by "
                                             f"{new.name}")
        r.row("majority writes while cut", f"{majority_acked} of 21 acknowledged")
        say(f"{new.name} leads term {new_term}; it acknowledges {majority_acked} puts, "
            f"{SHARED.decode()}='new value' among them.")

        # check-quorum: a leader that hears from no majority within an election timeout
        # steps down; give it three
        async def stepped_down() -> bool:
            st = await c.status(old)
            return st is not None and st.leader != old.member_id

        with contextlib.suppress(DemoError):
            await c.wait(f"{old.name} to step down", stepped_down, timeout=3 * ELECTION_S)
        st_old = await c.status(old)
        claims_lead = st_old is not None and st_old.leader == old.member_id
        self.claim(14, not claims_lead,
                   f"{old.name} (term {st_old.raftTerm}) and {new.name} (term {new_term}) both "
                   "claim leadership" if claims_lead and st_old is not None else
                   f"{old.name} no longer claims it, {time.monotonic() - cut_at:.1f} s after "
                   "the cut")
        read = await c.get(old, SHARED, timeout=3)
        stale = read == b"old value"
        self.claim(15, not stale and read != b"new value",
                   f"{old.name} answered {read!r} while the majority holds 'new value'"
                   if stale else f"{old.name} answered: {read!r}")
        r.row(f"linearizable read on {old.name}", f"{read!r}")
        old_term = st_old.raftTerm if st_old is not None else "?"
        say(f"{old.name} (term {old_term}) "
            + ("STILL claims leadership" if claims_lead else "no longer claims leadership")
            + f"; a linearizable read of {SHARED.decode()} on it "
            + (f"returns the OLD value {read!r}." if stale else f"fails: {read!r}."))
        commit_now = {n: st.raftIndex for n, st in (await self.statuses(self.minority)).items()}
        self.claim(11, commit_now == commit_at_cut and len(commit_now) == 2,
                   f"commit index at the cut {commit_at_cut}, now {commit_now}")
        r.row("minority commit index", f"at the cut {commit_at_cut}, before healing {commit_now}")
        await self.show_outside("during the cut")

        self.hub.heal()
        healed_at = time.monotonic()
        say("Healed: the proxies pass every link again.")
        await c.wait("all five to agree on one leader", lambda: self._agreed(c.members), 30)
        ref = await c.status(new)
        target = ref.raftIndex if ref is not None else 0

        async def caught_up() -> bool:
            sts = await self.statuses(c.members)
            return len(sts) == 5 and all(s.raftAppliedIndex >= target for s in sts.values())

        await c.wait("every member to apply the majority's log", caught_up, timeout=30)
        say(f"All five agree on one leader and apply the same log "
            f"{time.monotonic() - healed_at:.1f} s after healing.")
        after_log = walview.read_log(old.wal_dir)
        r.row(f"{old.name}'s log", "index: during the cut  ->  after healing")
        replaced = bool(uncommitted)
        for i, e in sorted(uncommitted.items()):
            now = after_log.get(i)
            r.row(f"  {i}", f"{walview.describe(e)}  ->  {walview.describe(now)}")
            if now is None or now.term <= e.term or walview.put_key(now) in minority_keys:
                replaced = False
        self.claim(16, replaced,
                   f"{len(uncommitted)} entries at indexes {sorted(uncommitted)} replaced"
                   if uncommitted else "the minority's puts never entered the old leader's log")
        present = []
        missing = 0
        for m in c.members:
            got = await c.read_prefix(m, PREFIX)
            present += [f"{k.decode()} on {m.name}" for k in minority_keys if k in got]
            missing += sum(1 for k, v in acked.items() if got.get(k) != v)
            if got.get(SHARED) != b"new value":
                missing += 1
        self.claim(17, not present, ", ".join(present) if present else
                   f"none of {MINORITY_PUTS} on any of 5 members")
        self.claim(18, missing == 0, f"{missing} missing or wrong" if missing else
                   f"{len(acked) + 1} keys on all 5 members")
        await self.show_outside("after healing")
        return r


async def _main(workdir: Path, unsafe_serves: bool) -> int:
    demo = SplitBrain(workdir, unsafe_serves, print)
    try:
        report = await demo.run()
    except (DemoError, OSError) as exc:
        print(f"FAILED to set up the demo: {exc}", file=sys.stderr)
        print(demo.c.log_tails(), file=sys.stderr)
        return EXIT_SETUP
    finally:
        await demo.c.close_channels()
        demo.c.stop_all()
        demo.hub.stop()
    print(report.render())
    return report.exit_code()


def main(unsafe_serves: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="raftkv-split-") as tmp:
        return asyncio.run(_main(Path(tmp), unsafe_serves))
