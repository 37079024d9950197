"""Pure tests of the quantile rules (Prometheus' bucketQuantile, said in words in
raftkv.diag.histogram) and of the window's reset tolerance."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from raftkv.diag.histogram import Histogram, bucket_quantile, window

INF = math.inf


def test_interpolates_inside_a_bucket() -> None:
    b = [(0.016, 985.0), (0.032, 998.0), (INF, 1000.0), (0.008, 900.0)]  # unsorted on purpose
    assert bucket_quantile(0.99, b) == 0.016 + 0.016 * (990 - 985) / (998 - 985)


def test_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, [(0.004, 980.0), (8.192, 980.0), (INF, 1000.0)]) == 8.192


def test_empty_missing_inf_and_too_few_buckets_are_nan() -> None:
    assert math.isnan(bucket_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))
    assert math.isnan(bucket_quantile(0.5, [(0.1, 3.0), (0.2, 5.0)]))
    assert math.isnan(bucket_quantile(0.5, [(INF, 5.0)]))
    assert math.isnan(bucket_quantile(0.5, []))


def test_q_out_of_range() -> None:
    b = [(0.1, 1.0), (INF, 2.0)]
    assert bucket_quantile(-0.1, b) == -INF
    assert bucket_quantile(1.1, b) == INF
    assert math.isnan(bucket_quantile(math.nan, b))


def test_lowest_bucket_lower_bound_is_zero_when_its_upper_is_positive() -> None:
    assert bucket_quantile(0.5, [(0.002, 10.0), (INF, 10.0)]) == 0.001
    # An upper bound <= 0 in the lowest bucket is returned as is.
    assert bucket_quantile(0.5, [(-1.0, 10.0), (0.0, 10.0), (INF, 10.0)]) == -1.0


def test_duplicate_bounds_merge_and_monotonicity_is_forced() -> None:
    merged = bucket_quantile(0.5, [(0.1, 2.0), (0.1, 2.0), (0.2, 8.0), (INF, 8.0)])
    assert merged == 0.1 + 0.1 * (4 - 4) / (8 - 4)
    # 0.2's count dips below 0.1's: raised to 50, so the median lands in the 0.1 bucket.
    assert bucket_quantile(0.5, [(0.1, 50.0), (0.2, 40.0), (0.4, 100.0), (INF, 100.0)]) == 0.1


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=15), st.floats(0, 1))
def test_quantile_is_within_the_bucket_range(counts: list[int], q: float) -> None:
    bounds = [0.001 * 2**i for i in range(len(counts) - 1)] + [INF]
    cum, run = [], 0.0
    for c in counts:
        run += c
        cum.append(run)
    v = bucket_quantile(q, list(zip(bounds, cum, strict=True)))
    if run == 0 or len(counts) < 2:
        assert math.isnan(v)
    elif q * run == 0 and counts[0] == 0:
        assert math.isnan(v)  # Prometheus divides 0 by 0 in the (empty) first bucket
    else:
        assert 0 <= v <= bounds[-2]


def test_window_difference_and_reset() -> None:
    a = Histogram(((0.1, 5.0), (INF, 10.0)), 10.0, 1.0)
    b = Histogram(((0.1, 7.0), (INF, 20.0)), 20.0, 3.0)
    w = window(a, b)
    assert not w.reset and w.histogram.buckets == ((0.1, 2.0), (INF, 10.0))
    restarted = Histogram(((0.1, 1.0), (INF, 3.0)), 3.0, 0.5)
    w = window(b, restarted)
    assert w.reset and w.histogram == restarted
    relaid = Histogram(((0.2, 8.0), (INF, 30.0)), 30.0, 4.0)
    assert window(b, relaid).reset
