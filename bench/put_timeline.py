"""Where one put's milliseconds go, step by step, across the three members of a cluster.

etcd's benchmark tool writes with one client through the leader of a 3-member raftkv
cluster whose members load ``bench/timeline_hooks.py``; that module stamps each step of a
put (handler, Raft messages, WAL hand-off to a worker thread and back, fdatasync, commit,
apply) with CLOCK_MONOTONIC, which all processes on a host share. This script joins the
stamps by Raft index and prints, per step, the median and 90th percentile. The hooks are
wrappers around a few methods; they are not part of the server.

The critical path of one put via the leader: the handler proposes and the leader sends
MsgApp; the first follower to answer receives it, hands its WAL save to a worker thread,
syncs, comes back to the loop and answers; the leader, its own save done too, commits,
applies and replies.

Run: ``.venv/bin/python -m bench.put_timeline [--total 3000] [--members 1|3] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.compare import (
    benchmark_bin,
    emit,
    leader_and_follower,
    parse_benchmark,
    report_head,
    run_benchmark,
)
from bench.grpc_servicer import running
from tests.support.etcd import raftkv_cluster

Events = dict[tuple[str, int], int]  # (event, index) -> first time, ns


def load(path: Path) -> tuple[int, Events, list[tuple[int, str]]]:
    """A member's ID, its indexed events, and its put0/put1 stamps in order."""
    member = 0
    events: Events = {}
    puts: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        t, name, value = line.split()
        if name == "id":
            member = int(value)
        elif name in ("put0", "put1"):
            puts.append((int(t), name))
        elif name not in ("fsync0", "fsync1"):
            events.setdefault((name, int(value)), int(t))
    return member, events, puts


def fsyncs(path: Path) -> list[float]:
    """Each fdatasync's duration in µs."""
    out: list[float] = []
    start = 0
    for line in path.read_text().splitlines():
        t, name, _ = line.split()
        if name == "fsync0":
            start = int(t)
        elif name == "fsync1" and start:
            out.append((int(t) - start) / 1e3)
            start = 0
    return out


def timeline(leader: Events, leader_puts: list[tuple[int, str]],
             followers: dict[int, Events]) -> dict[str, list[float]]:
    """Per step, its durations in µs over the puts (the first tenth left out as warm-up)."""
    steps: dict[str, list[float]] = defaultdict(list)
    indexes = sorted(i for (name, i) in leader if name == "wal_call")
    starts = [t for t, n in leader_puts if n == "put0"]
    ends = [t for t, n in leader_puts if n == "put1"]

    def add(step: str, a: int | None, b: int | None) -> None:
        if a is not None and b is not None:
            steps[step].append((b - a) / 1e3)

    for i in indexes[len(indexes) // 10:]:
        # the MsgApp's send (with followers), else the hand-off of the leader's own save
        sent = leader.get(("send_app", i), leader[("wal_call", i)])
        start = max((t for t in starts if t <= sent), default=None)
        commit, apply0, apply1 = (leader.get((e, i)) for e in ("commit", "apply0", "apply1"))
        end = min((t for t in ends if apply1 is not None and t >= apply1), default=None)
        if start is None or end is None or commit is None:
            continue
        add("total: handler start to reply", start, end)
        if followers:
            add("leader: handler start to MsgApp sent", start, sent)
        else:
            add("leader: handler start to its WAL save handed to a worker", start, sent)
        add("outside the handler: its reply to the next request's handler start (gRPC "
            "both ways, the client)", end, min((t for t in starts if t > end), default=None))
        if followers:
            add("leader: MsgApp sent to its own WAL save handed to a worker", sent,
                leader.get(("wal_call", i)))
        add("leader: WAL hand-off to the worker thread", leader.get(("wal_call", i)),
            leader.get(("wal_in", i)))
        add("leader: WAL write + fdatasync", leader.get(("wal_in", i)), leader.get(("wal_out", i)))
        add("leader: back from the worker thread", leader.get(("wal_out", i)),
            leader.get(("wal_back", i)))
        # the follower whose answer arrived first is the one on the commit path (none
        # with one member: the leader's own save commits)
        answers = {fid: leader.get((f"recv_resp:{fid:x}", i)) for fid in followers}
        arrived = {fid: t for fid, t in answers.items() if t is not None}
        if followers and not arrived:
            continue
        if arrived:
            fid = min(arrived, key=lambda f: arrived[f])
            f = followers[fid]
            add("follower: MsgApp sent to received by the Ready loop", sent, f.get(("recv_app", i)))
            add("follower: received to WAL save handed to a worker", f.get(("recv_app", i)),
                f.get(("wal_call", i)))
            add("follower: WAL hand-off to the worker thread", f.get(("wal_call", i)),
                f.get(("wal_in", i)))
            add("follower: WAL write + fdatasync", f.get(("wal_in", i)), f.get(("wal_out", i)))
            add("follower: back from the worker thread", f.get(("wal_out", i)),
                f.get(("wal_back", i)))
            add("follower: back to MsgAppResp sent", f.get(("wal_back", i)),
                f.get(("send_resp", i)))
            add("follower: MsgAppResp sent to received by the leader", f.get(("send_resp", i)),
                arrived[fid])
        known = [t for t in (min(arrived.values(), default=None),
                             leader.get(("wal_back", i))) if t is not None]
        quorum = max(known) if known else None
        if quorum is not None and commit < quorum:
            # one voter: the Ready that carries the entry also commits it; apply still
            # waits for the save (step 3 comes after step 1)
            add("leader: its save back to apply start (committed in the Ready that "
                "carried it)", quorum, apply0)
        else:
            add("leader: quorum (first answer and own save) to commit Ready", quorum, commit)
            add("leader: commit Ready to apply start", commit, apply0)
        add("leader: apply of the entry", apply0, apply1)
        add("leader: apply end to reply", apply1, end)
    return steps


def one_client_put(total: int) -> list[str]:
    """The benchmark's arguments for the load both servers get: one client, 256-byte values."""
    return ["--clients=1", "--conns=1", "put", f"--total={total}", "--key-size=8",
            "--val-size=256"]


def measure(total: int, workdir: Path,
            members: int = 3) -> tuple[str, dict[str, list[float]], list[float]]:
    hooks = workdir / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import bench.timeline_hooks  # noqa: F401\n")
    events = workdir / "events"
    events.mkdir()
    repo = Path(__file__).resolve().parent.parent
    c = raftkv_cluster(workdir / "cluster", members, env={
        "PYTHONPATH": f"{hooks}:{repo}", "RAFTKV_TIMELINE_DIR": str(events)})
    c.start()
    try:
        leader = leader_and_follower(c)[0] if members > 1 else c.members[0]
        assert leader.proc is not None
        leader_pid = leader.proc.pid
        rps, p50, p99 = run_benchmark([leader], one_client_put(total))
    finally:
        c.stop()
    loaded = {int(p.stem): load(p) for p in events.glob("*.events")}
    if leader_pid not in loaded or len(loaded) != members:
        raise RuntimeError(f"expected the events of {members} members, got {sorted(loaded)}")
    _, lev, lputs = loaded.pop(leader_pid)
    steps = timeline(lev, lputs, {mid: ev for mid, ev, _ in loaded.values()})
    syncs = [x for p in events.glob("*.events") for x in fsyncs(p)]
    return (f"benchmark: {rps:.0f} writes/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"(the hooks included)", steps, syncs)


def null_servicer_put(total: int) -> str:
    """The same one-client put at the null servicer in raftkv's gRPC shape: what gRPC,
    the event loop and the client cost with no consensus and no disk."""
    with running("aio-generic") as (port, _):
        r = subprocess.run([str(benchmark_bin()), f"--endpoints=127.0.0.1:{port}",
                            *one_client_put(total)],
                           capture_output=True, text=True, timeout=600, check=True)
    rps, p50, p99 = parse_benchmark(r.stdout)
    return (f"the same load at the null grpc.aio servicer (`bench/grpc_servicer.py`, "
            f"aio-generic): {rps:.0f} writes/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def report(head: str, steps: dict[str, list[float]], syncs: list[float]) -> str:
    def q(v: list[float], p: float) -> float:
        return sorted(v)[min(len(v) - 1, int(len(v) * p))]

    lines = [head, "", "| step | puts | p50 µs | p90 µs |", "|---|---:|---:|---:|"]
    # the critical path in order, the time outside the handler last
    for name, v in sorted(steps.items(), key=lambda kv: kv[0].startswith("outside")):
        lines.append(f"| {name} | {len(v)} | {statistics.median(v):.0f} | {q(v, 0.9):.0f} |")
    if syncs:
        lines.append(f"| (every member's fdatasync alone) | {len(syncs)} | "
                     f"{statistics.median(syncs):.0f} | {q(syncs, 0.9):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--total", type=int, default=3000, help="puts, one client via the leader")
    p.add_argument("--members", type=int, choices=(1, 3), default=3,
                   help="1: the same put with no followers (no replication on the path)")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raftkv-timeline-") as d:
        head, steps, syncs = measure(a.total, Path(d), a.members)
    head += "; " + null_servicer_put(a.total)
    text = "\n".join(report_head("One put's time line, via the leader (bench/put_timeline.py)",
                                 "bench.put_timeline", argv,
                                 f"{a.members} raftkv member(s) on loopback, fsync on, one client "
                                 "(etcd's benchmark v3.6.8, 256-byte values)"))
    emit(text + "\n" + report(head, steps, syncs) + "\n", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
