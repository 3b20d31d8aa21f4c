"""Exponential histogram arithmetic: rescaling, merging, native spans and classic buckets.

OTLP exponential buckets at ``scale`` have base ``2**(2**-scale)``; bucket
``index`` covers ``(base**index, base**(index+1)]``. A bucket list is
``(offset, counts)``: ``counts[i]`` belongs to index ``offset + i``.

* Downscaling by ``d`` maps index ``i`` to ``i >> d`` (floor division by
  ``2**d``), merging neighbours; two lists are added after both are brought to
  the smaller scale.
* Native histograms (``io.prometheus.client.Histogram``) use schema = scale
  and bucket key ``index + 1`` (their buckets are ``(base**(k-1), base**k]``),
  encoded as spans of consecutive keys plus count deltas; runs of up to two
  empty buckets stay inside a span, longer gaps start a new span.
* Classic conversion: every exponential bucket is counted under the first
  classic bound at or above its upper edge (so ``le`` counts never include
  observations above the bound; quantile estimates err upwards by at most one
  classic bucket). The zero bucket goes under the first bound >= its threshold.

All functions are pure and take and return tuples (values are immutable and
shared with concurrent renders).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "Buckets",
    "add_buckets",
    "classic_counts",
    "downscale",
    "native_spans",
    "sub_buckets",
    "upper_bound",
]

#: Native histogram schemas Prometheus accepts.
MAX_SCALE = 8
MIN_SCALE = -4

Buckets = tuple[int, tuple[int, ...]]
_EMPTY: tuple[int, ...] = ()


def downscale(offset: int, counts: tuple[int, ...], by: int) -> Buckets:
    """The buckets ``(offset, counts)`` at a scale lower by ``by`` (>= 0)."""
    if by <= 0 or not counts:
        return offset, counts
    new_offset = offset >> by
    out = [0] * (((offset + len(counts) - 1) >> by) - new_offset + 1)
    for i, c in enumerate(counts):
        if c:
            out[((offset + i) >> by) - new_offset] += c
    return new_offset, tuple(out)


def _align(a: Buckets, b: Buckets) -> tuple[int, list[int], list[int]]:
    """Both lists over one common index range."""
    (ao, ac), (bo, bc) = a, b
    if not ac:
        return bo, [0] * len(bc), list(bc)
    if not bc:
        return ao, list(ac), [0] * len(ac)
    lo = min(ao, bo)
    hi = max(ao + len(ac), bo + len(bc))
    xa = [0] * (hi - lo)
    xb = [0] * (hi - lo)
    xa[ao - lo:ao - lo + len(ac)] = ac
    xb[bo - lo:bo - lo + len(bc)] = bc
    return lo, xa, xb


def add_buckets(a: Buckets, b: Buckets) -> Buckets:
    """Bucket-wise sum of two lists at the same scale."""
    lo, xa, xb = _align(a, b)
    return lo, tuple(x + y for x, y in zip(xa, xb, strict=True))


def sub_buckets(a: Buckets, b: Buckets) -> Buckets | None:
    """``a - b`` bucket-wise, or None when a bucket would go negative (a reset)."""
    lo, xa, xb = _align(a, b)
    out = tuple(x - y for x, y in zip(xa, xb, strict=True))
    return None if any(c < 0 for c in out) else (lo, out)


def upper_bound(scale: int, index: int) -> float:
    """Upper edge of bucket ``index`` at ``scale``: ``2**((index+1) * 2**-scale)``."""
    try:
        return math.ldexp(1.0, index + 1) if scale == 0 else 2.0 ** ((index + 1) * 2.0 ** -scale)
    except OverflowError:
        return math.inf


def classic_counts(scale: int, zero_count: int, zero_threshold: float, positive: Buckets,
                   negative: Buckets, bounds: tuple[float, ...]) -> tuple[int, ...]:
    """Per-bucket (not cumulative) counts over classic ``bounds`` (+Inf last)."""
    out = [0] * (len(bounds) + 1)
    if zero_count:
        out[bisect_left(bounds, zero_threshold)] += zero_count
    offset, counts = negative
    for i, c in enumerate(counts):
        if c:
            # Negative bucket i covers [-base**(i+1), -base**i): its upper edge is -base**i.
            out[bisect_left(bounds, -upper_bound(scale, offset + i - 1))] += c
    offset, counts = positive
    for i, c in enumerate(counts):
        if c:
            out[bisect_left(bounds, upper_bound(scale, offset + i))] += c
    return tuple(out)


def native_spans(offset: int, counts: tuple[int, ...]) -> tuple[list[tuple[int, int]], list[int]]:
    """Native histogram spans ``[(offset, length)]`` and count deltas of OTLP buckets.

    The first span's offset is the native key of the first populated bucket
    (``index + 1``); each later offset is the number of empty keys since the
    previous span's end. Gaps of up to two empty buckets stay inside a span.
    """
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    prev = 0
    last_key: int | None = None
    for i, c in enumerate(counts):
        if not c:
            continue
        key = offset + i + 1
        if last_key is not None and key - last_key - 1 <= 2:
            for _ in range(key - last_key - 1):
                deltas.append(-prev)
                prev = 0
            spans[-1] = (spans[-1][0], spans[-1][1] + key - last_key)
        else:
            spans.append((key if last_key is None else key - last_key - 1, 1))
        deltas.append(c - prev)
        prev = c
        last_key = key
    return spans, deltas


def cumulative(counts: tuple[int, ...]) -> list[int]:
    """Running totals of per-bucket counts."""
    return list(accumulate(counts)) if counts else []


EMPTY_BUCKETS: Buckets = (0, _EMPTY)
