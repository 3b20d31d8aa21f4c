"""A base-2 exponential histogram aggregator (OTLP ``ExponentialHistogramDataPoint``), positive values only.

Role: the ``exponential`` form of the ``duration`` metric. It follows the
OpenTelemetry metrics SDK's aggregation: start at scale 20 and lower the
scale (merging neighbouring buckets) whenever the populated index range would
need more than ``max_size`` buckets. Bucket ``i`` at scale ``s`` covers
``(2**(i * 2**-s), 2**((i + 1) * 2**-s)]``; zero goes to the zero bucket.

Index mapping (the spec's): for ``s > 0`` from the natural logarithm with an
exact answer for powers of two; for ``s <= 0`` from the binary exponent
(``math.frexp``), shifted right by ``-s``.

Not thread-safe; owned by one series of one connector.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["MAX_SCALE", "MIN_SCALE", "ExpHistogram", "map_to_index"]

MAX_SCALE: Final = 20
MIN_SCALE: Final = -10
_LOG2E: Final = 1.0 / math.log(2.0)


def map_to_index(value: float, scale: int) -> int:
    """The bucket index of ``value`` (> 0) at ``scale``."""
    frac, exp = math.frexp(value)  # value = frac * 2**exp, frac in [0.5, 1)
    if scale > 0:
        if frac == 0.5:  # an exact power of two is the upper bound of its bucket
            return ((exp - 1) << scale) - 1
        return math.ceil(math.log(value) * _LOG2E * (1 << scale)) - 1
    index = exp - 2 if frac == 0.5 else exp - 1
    return index >> -scale


class ExpHistogram:
    """Counts, sum, min, max and exponential buckets of positive observations.

    Args:
        max_size: the most buckets the positive range may span.
    """

    __slots__ = ("count", "counts", "hi", "lo", "max", "max_size", "min", "scale", "sum", "zero_count")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        """Forget every observation (delta temporality, after a flush)."""
        self.scale = MAX_SCALE
        self.counts: dict[int, int] = {}
        self.lo = 0
        self.hi = -1
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero_count = 0

    def record(self, value: float) -> None:
        """Add one observation (``value`` >= 0)."""
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 0.0:
            self.zero_count += 1
            return
        i = map_to_index(value, self.scale)
        counts = self.counts
        if not counts:
            self.lo = self.hi = i
        elif i < self.lo or i > self.hi:
            lo, hi = min(self.lo, i), max(self.hi, i)
            if hi - lo + 1 > self.max_size:
                by = 0
                while (hi >> by) - (lo >> by) + 1 > self.max_size:
                    by += 1
                by = min(by, self.scale - MIN_SCALE)
                self._downscale(by)
                counts = self.counts
                i = map_to_index(value, self.scale)
                lo, hi = min(self.lo, i), max(self.hi, i)
            self.lo, self.hi = lo, hi
        counts[i] = counts.get(i, 0) + 1

    def _downscale(self, by: int) -> None:
        if by <= 0:
            return
        merged: dict[int, int] = {}
        for i, c in self.counts.items():
            j = i >> by
            merged[j] = merged.get(j, 0) + c
        self.counts = merged
        self.scale -= by
        self.lo >>= by
        self.hi >>= by

    def bucket_counts(self) -> list[int]:
        """Counts of the positive buckets ``lo..hi``."""
        get = self.counts.get
        return [get(i, 0) for i in range(self.lo, self.hi + 1)]

    def write(self, dp: Any) -> None:
        """Fill an OTLP ``ExponentialHistogramDataPoint`` (attributes and times are the caller's)."""
        dp.count = self.count
        dp.sum = self.sum
        dp.scale = self.scale
        dp.zero_count = self.zero_count
        if self.count:
            dp.min = self.min
            dp.max = self.max
        if self.counts:
            dp.positive.offset = self.lo
            dp.positive.bucket_counts.extend(self.bucket_counts())
