"""bench/compare.py's reading of tool output (pure parsing; the benchmarks themselves run
outside ``make test``): a failed check perf still reports its throughput."""

from __future__ import annotations

from bench.compare import parse_benchmark, read_check_perf

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
