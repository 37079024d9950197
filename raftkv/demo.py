"""`make demo`: a five-node Raft cluster in memory loses its leader and keeps every commit.

Until the networked server exists, this drives the real consensus core over a simulated
network (raftkv.simulation) and narrates what happens: an election, writes committed by
a majority, the leader crashing, a new leader elected in a higher term, the committed
writes still there, the old leader rejoining and catching up. Exits 0 only if every one
of those facts held.
"""

from __future__ import annotations

import sys

from raftkv.raft import ProposalDropped
from raftkv.simulation import SimCluster, SimConfig

TICK_MS = 100  # what one tick stands for, to speak in time rather than ticks


def say(msg: str) -> None:
    print(msg, flush=True)


def main() -> int:
    ids = [1, 2, 3, 4, 5]
    c = SimCluster(ids, SimConfig(election_tick=10, heartbeat_tick=1), seed=2026)
    say(f"Five raftkv members start: {ids}. Nobody leads yet.")
    ticks = c.run_until(lambda: c.leader() is not None, 200)
    lead = c.leader()
    if lead is None or lead.node is None:
        say("FAILED: no leader was elected.")
        return 1
    term1 = lead.node.raft.term
    say(f"After {ticks * TICK_MS} ms of silence, member {lead.id} wins the election "
        f"for term {term1} (it needed 3 of 5 votes).")

    writes = [b"/registry/pods/web-1", b"/registry/pods/web-2", b"/registry/configmaps/app"]
    for w in writes:
        c.propose(lead.id, w)
    c.stabilize()
    committed = lead.node.raft.raft_log.committed
    holders = [n.id for n in c.nodes.values() if set(writes) <= set(n.values)]
    say(f"Member {lead.id} replicates {len(writes)} writes; a majority stored them, so they "
        f"are committed (commit index {committed}) and applied on members {holders}.")

    old = lead.id
    lead.crash()
    say(f"Member {old}, the leader, crashes. The others stop hearing its heartbeats.")
    t = c.run_until(lambda: (n := c.leader()) is not None and n.id != old, 400)
    new = c.leader()
    if new is None or new.node is None:
        say("FAILED: no new leader after the crash.")
        return 1
    term2 = new.node.raft.term
    say(f"{t * TICK_MS} ms later member {new.id} is elected leader for term {term2} "
        f"(pre-vote first, so a term is only spent on an election that can succeed).")

    try:
        c.propose(new.id, b"/registry/pods/web-3")
    except ProposalDropped as exc:
        say(f"FAILED: the new leader refused a write: {exc}")
        return 1
    c.stabilize()
    lost = [w.decode() for w in writes if w not in new.values]
    say(f"Member {new.id} still holds every write committed before the crash"
        + (f" - except {lost}!" if lost else ", and accepts a new one."))

    c.nodes[old].start()
    c.run_until(lambda: c.nodes[old].values == new.values, 200)
    back = c.nodes[old]
    assert back.node is not None
    say(f"Member {old} restarts from its disk, learns of term {back.node.raft.term}, follows "
        f"member {back.node.raft.lead} and catches up: {len(back.values)} writes applied.")

    checks = {
        "a leader was elected": term1 > 0,
        "a different member took over": new.id != old,
        "in a higher term": term2 > term1,
        "no committed write was lost": not lost,
        "every member has the same writes": all(
            n.values == new.values for n in c.nodes.values()
        ),
    }
    say("")
    for what, ok in checks.items():
        say(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if all(checks.values()):
        say("\nEverything held.")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
