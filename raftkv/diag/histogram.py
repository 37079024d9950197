"""Classic Prometheus histograms and their quantiles, computed as Prometheus computes them.

:func:`bucket_quantile` follows ``bucketQuantile`` in Prometheus' ``promql/quantile.go``
(v2.42, the version the tests run), rule for rule, in words:

- q is NaN -> NaN; q < 0 -> -Inf; q > 1 -> +Inf.
- Buckets are sorted by upper bound. If the highest bound is not +Inf -> NaN.
- Buckets with the same upper bound are merged (counts added).
- Counts are made monotonic: a bucket whose count is below that of a lower bucket is raised
  to it (the "envelope"), since a cumulative count can never fall.
- Fewer than two buckets -> NaN. No observations (the +Inf count is 0) -> NaN: an empty
  histogram has no quantile.
- rank = q * observations; the chosen bucket is the first (among all but +Inf) whose
  cumulative count reaches the rank.
- If only the +Inf bucket reaches it, the answer is the upper bound of the second-highest
  bucket (the largest finite bound): Prometheus cannot say more than "beyond the last
  bucket", so a P99 in +Inf for etcd's buckets reads 8.192 s.
- If the chosen bucket is the lowest and its upper bound is <= 0, that bound is returned.
- Otherwise the value is interpolated linearly inside the bucket, from the previous bucket's
  upper bound (0 for the lowest bucket: a natural lower bound of 0 when the lowest upper
  bound is above 0) to its own upper bound, by (rank - count below) / (count in bucket).

:func:`window` takes two scrapes of one cumulative histogram and returns the increase
between them. Reset tolerance: when any bucket count (or the sample count) of the later
scrape is below the earlier one, or the bucket layout changed, the process restarted
between the scrapes, so the later scrape's counts are the increase (a counter restarts
from zero). Prometheus' ``rate`` handles a reset the same way, series by series.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Bucket = tuple[float, float]  # (upper bound, cumulative count)


def bucket_quantile(q: float, buckets: Iterable[Bucket]) -> float:
    """The q-quantile of cumulative ``buckets``, exactly as Prometheus' histogram_quantile."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or not (math.isinf(ordered[-1][0]) and ordered[-1][0] > 0):
        return math.nan
    merged = _coalesce(ordered)
    counts = _monotonic([c for _, c in merged])
    bounds = [u for u, _ in merged]
    if len(merged) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    # Go's sort.Search over all but the last bucket: first i with counts[i] >= rank.
    b = bisect.bisect_left(counts, rank, 0, len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0
    end = bounds[b]
    count = counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:  # only when rank is 0 (q=0, empty first bucket): Go's 0/0 is NaN
        return math.nan
    return start + (end - start) * (rank / count)


def _coalesce(ordered: Sequence[Bucket]) -> list[Bucket]:
    out: list[Bucket] = []
    for upper, count in ordered:
        if out and out[-1][0] == upper:
            out[-1] = (upper, out[-1][1] + count)
        else:
            out.append((upper, count))
    return out


def _monotonic(counts: list[float]) -> list[float]:
    out = list(counts)
    top = out[0]
    for i in range(1, len(out)):
        if out[i] > top:
            top = out[i]
        elif out[i] < top:
            out[i] = top
    return out


@dataclass(frozen=True)
class Histogram:
    """One cumulative histogram as scraped: buckets by upper bound, sample count and sum."""

    buckets: tuple[Bucket, ...]
    count: float
    sum: float

    @property
    def observations(self) -> float:
        return max((c for u, c in self.buckets if math.isinf(u)), default=self.count)

    def quantile(self, q: float) -> float:
        return bucket_quantile(q, self.buckets)


@dataclass(frozen=True)
class Window:
    """The increase of a histogram between two scrapes, and whether a reset was seen."""

    histogram: Histogram
    reset: bool


def window(before: Histogram, after: Histogram) -> Window:
    old = dict(before.buckets)
    new = dict(after.buckets)
    if old.keys() != new.keys() or after.count < before.count or any(
        new[u] < old[u] for u in new
    ):
        return Window(after, reset=True)
    diff = tuple((u, new[u] - old[u]) for u, _ in after.buckets)
    return Window(
        Histogram(diff, after.count - before.count, after.sum - before.sum), reset=False
    )
