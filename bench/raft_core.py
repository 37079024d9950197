"""Throughput of the Raft core alone: committed entries per second, no disk, no network.

A cluster of in-memory nodes (raftkv.simulation) elects a leader; then batches of
proposals go to the leader and every message is delivered until all nodes have applied
them. Reported: entries/s committed and applied on every node, per batch size and
cluster size, on one core (this process). Run: ``.venv/bin/python bench/raft_core.py``.
"""

from __future__ import annotations

import argparse
import platform
import time

from raftkv.simulation import SimCluster, SimConfig


def measure(nodes: int, batch: int, total: int, payload: int) -> float:
    c = SimCluster(list(range(1, nodes + 1)), SimConfig(max_inflight_msgs=256), seed=1)
    if c.run_until(lambda: c.leader() is not None, 500) < 0:
        raise RuntimeError("no leader elected")
    lead = c.leader()
    assert lead is not None
    data = [b"x" * payload] * batch
    rounds = max(1, total // batch)
    start_applied = min(len(n.values) for n in c.nodes.values())
    t0 = time.perf_counter()
    for _ in range(rounds):
        c.propose_batch(lead.id, data)
        c.stabilize()
    elapsed = time.perf_counter() - t0
    applied = min(len(n.values) for n in c.nodes.values()) - start_applied
    if applied != rounds * batch:
        raise RuntimeError(f"only {applied} of {rounds * batch} entries applied everywhere")
    return applied / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=60_000)
    ap.add_argument("--payload", type=int, default=64, help="bytes per entry")
    args = ap.parse_args()
    print(f"raft core, in memory, {args.payload}-byte entries, "
          f"Python {platform.python_version()} on {platform.machine()}")
    print(f"{'nodes':>5} {'batch':>6} {'entries/s':>12}")
    for nodes, batch in ((3, 1), (3, 16), (3, 256), (5, 1), (5, 16), (5, 256)):
        total = args.entries if batch > 1 else args.entries // 10
        rate = measure(nodes, batch, total, args.payload)
        print(f"{nodes:>5} {batch:>6} {rate:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
