"""Issue 11 defect 6: a Range over 100k keys, a defragmentation and a compaction of 100k
revisions keep the event loop's lag p99 below the heartbeat interval, cause no leader
change, and a client writing meanwhile sees no failure. Three members share one event
loop (bench/loop_lag.py), so a stall on any member shows. Before the fix each operation
was one synchronous call: ``python -m bench.loop_lag --mode sync`` measures 0.1 to 1 s
stalls (bench/results/loop_lag.txt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.loop_lag import report, run

pytestmark = pytest.mark.slow  # builds a 200k-revision database, three members


async def test_heavy_operations_do_not_stall_the_loop(tmp_path: Path) -> None:
    out = await run(tmp_path, 100_000, "paged")
    print(report(out, 100_000, "paged"))
    for op in out.ops:
        assert op.p99 < out.heartbeat, f"{op.name}: loop lag p99 {op.p99:.3f}s"
    assert out.leader_changes == 0
    assert out.writes_failed == 0 and out.writes_ok > 0
