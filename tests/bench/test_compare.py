"""bench/compare.py's reading of tool output (pure parsing; the benchmarks themselves run
outside ``make test``): a failed check perf still reports its throughput."""

from __future__ import annotations

from bench.compare import SERVERS, Row, floors, parse_benchmark, read_check_perf

PASS = """ 60 / 60 Booooooooooo! 100.00% 1m0s
PASS: Throughput is 972 writes/s
PASS: Slowest request took 0.184000s
PASS: Stddev is 0.021000s
PASS
"""
FAIL = """ 60 / 60 Booooooooooo! 100.00% 1m0s
FAIL: Throughput too low: 868 writes/s
PASS: Slowest request took 0.472000s
PASS: Stddev is 0.060000s
FAIL
"""


def test_check_perf_pass_and_fail_both_give_the_rate() -> None:
    assert read_check_perf(PASS, 0) == (972.0, "PASS; slowest 184 ms")
    rate, note = read_check_perf(FAIL, 1)
    assert rate == 868.0
    assert note == "FAIL: Throughput too low: 868 writes/s; FAIL; slowest 472 ms"


def test_check_perf_without_a_rate_says_so() -> None:
    assert read_check_perf("Error: context deadline exceeded\n", 1) == (None,
                                                                        "exit 1")


def test_benchmark_summary() -> None:
    out = """Summary:
  Total:	10.0 secs.
  Requests/sec:	1506.2
Latency distribution:
  10% in 0.0500 secs.
  50% in 0.1448 secs.
  99% in 0.5584 secs.
"""
    assert parse_benchmark(out) == (1506.2, 144.8, 558.4)


def test_floors_hold_or_not_per_row() -> None:
    rk, et = SERVERS
    rows = [Row(rk, "check perf --load=l", 2200.0), Row(et, "check perf --load=l", 2600.0),
            Row(rk, "put, 1 client via leader", 255.0, 3.7, 8.7),
            Row(et, "put, 1 client via leader", 761.0, 1.1, 5.9)]
    text = floors(rows, 2300.0)  # the null servicer's rate in the same run
    assert ("| check perf --load=l: writes/s | >= 0.8x etcd | 2200.0 | 2600.0 | 0.85x | yes |"
            in text)
    assert "| put, 1 client via leader: p50 | <= 1.5x etcd | 3.7 | 1.1 | 3.36x | **no** |" in text
    assert "| put, 1 client via leader: p99 | <= 2.0x etcd | 8.7 | 5.9 | 1.47x | yes |" in text
    assert "etcd column) | >= 1.0x | 2200.0 | 2300.0 | 0.96x | **no** |" in text
    assert "null grpc.aio servicer" not in floors(rows, None)  # not measured: no floor
    assert "via follower" not in text  # a floor without both rows is left out
