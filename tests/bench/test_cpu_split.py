"""bench/cpu_split.py's arithmetic (pure; the benchmark runs outside ``make test``): CPU
per write from a run's seconds, the cores' ceiling, and the budget a target rate leaves."""

from __future__ import annotations

import os

from bench.cpu_split import NULL, Split, beyond_grpc, needed, table, thread_cpu


def _rows() -> list[Split]:
    # 10,000 writes: 5 s leader (4 s its loop), 7 s followers, 1 s load -> 1.3 ms/write
    return [Split("raftkv", 256, 10_000, 1400.0, 160.0, 5.0, 4.0, 7.0, 1.0),
            Split("etcd 3.6.16", 256, 10_000, 7000.0, 30.0, 0.7, None, 1.2, 0.6)]


def test_table_gives_ms_per_write_and_the_ceiling() -> None:
    lines = table(_rows(), cores=2).splitlines()
    assert lines[2] == ("| raftkv | 256 | 1400 | 160.0 | 0.50 (0.40) | 0.70 | 0.10 | 1.30 "
                        "| 1538 | 91% |")
    assert lines[3] == ("| etcd 3.6.16 | 256 | 7000 | 30.0 | 0.07 | 0.12 | 0.06 | 0.25 "
                        "| 8000 | 88% |")


def test_needed_budget_for_a_share_of_etcds_rate() -> None:
    text = needed(_rows(), cores=2, share=0.8)
    # 0.8 x 7000 = 5600 writes/s -> 2000 ms / 5600 = 0.36 ms; raftkv 1.30 ms is 3.6x
    assert "5600 writes/s: at most 0.36 ms" in text and "1.30 ms (3.6x" in text
    assert needed(_rows()[:1], cores=2) == ""  # no etcd row: nothing to compare


def test_thread_cpu_reads_this_process() -> None:
    sum(i * i for i in range(200_000))  # some CPU on the main thread
    got = thread_cpu(os.getpid())
    assert os.getpid() in got and got[os.getpid()] > 0


def test_beyond_grpc_takes_the_null_servicers_cost_from_raftkvs() -> None:
    rows = [*_rows(), Split(NULL, 256, 10_000, 2500.0, 90.0, 4.0, None, 0.0, 1.5),
            Split("raftkv", 16, 1000, 900.0, 9.0, 1.0, 0.8, 1.0, 0.2)]
    # raftkv: (5 + 7) s / 10,000 = 1.20 ms; null: 4 s / 10,000 = 0.40 ms; etcd 0.19 ms
    assert beyond_grpc(rows) == [
        "- 256 clients: raftkv's members spend 1.20 ms per write; gRPC alone (the null "
        "servicer) 0.40 ms per request, so 0.80 ms is raftkv's own work; etcd's three "
        "members spend 0.19 ms per write in all."]  # 16 clients: no null row, no line
