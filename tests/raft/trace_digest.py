"""A digest of one Raft simulation seed's whole event trace, to pin replay across refactors.

Every Ready of every node (tick, node, hard state, entries, committed entries, messages
rendered by :func:`~raftkv.simulation.describe_message`) and the run's outcome are fed to
one SHA-256. Equal digests mean the seed replayed the same run event for event.
"""

from __future__ import annotations

import hashlib

from raftkv.raft import Ready
from raftkv.simulation import SimNode, describe_entry, describe_message
from tests.raft.sim_harness import SimParams, Simulation


def trace_digest(seed: int, nodes: int, ticks: int, proposals: int) -> str:
    sim = Simulation(SimParams(seed, nodes, ticks, proposals))
    h = hashlib.sha256()
    on_ready = sim.checker.on_ready

    def hook(n: SimNode, rd: Ready) -> None:
        hs = rd.hard_state
        h.update(f"{sim.now} {n.id} hs={hs.term},{hs.vote},{hs.commit}\n".encode())
        for e in rd.entries:
            h.update(b"E " + describe_entry(e).encode() + b"\n")
        for e in rd.committed_entries:
            h.update(b"C " + describe_entry(e).encode() + b"\n")
        for m in rd.messages:
            h.update(b"M " + describe_message(m).encode() + b"\n")
        on_ready(n, rd)

    sim.checker.on_ready = hook  # type: ignore[method-assign]
    res = sim.run()
    h.update(f"result {res.committed} {res.final_leader} {res.final_term} {res.heal_ticks} "
             f"{sorted(res.cov.counts.items())}".encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    import sys

    for s in sys.argv[1:]:
        print(s, trace_digest(int(s), (3, 5, 7)[int(s) % 3], 600, 60))
