"""Exponential bucket arithmetic: downscale, merge, native spans, classic conversion."""

from __future__ import annotations

import math
import random

import pytest

from agent.exporters.prometheus import exphist


def test_downscale_merges_neighbours_with_floor_indices() -> None:
    assert exphist.downscale(0, (1, 2, 3, 4), 1) == (0, (3, 7))
    assert exphist.downscale(-3, (1, 1, 1, 1), 1) == (-2, (1, 2, 1))  # -3,-2,-1,0 -> -2,-1,-1,0
    assert exphist.downscale(5, (1,), 3) == (0, (1,))
    assert exphist.downscale(5, (), 3) == (5, ())
    assert exphist.downscale(2, (1, 2), 0) == (2, (1, 2))


def test_downscale_preserves_totals_and_bucket_membership() -> None:
    rng = random.Random(11)
    for _ in range(100):
        scale = rng.randrange(-2, 9)
        offset = rng.randrange(-50, 50)
        counts = tuple(rng.randrange(0, 5) for _ in range(rng.randrange(1, 40)))
        by = rng.randrange(0, 5)
        new_offset, new_counts = exphist.downscale(offset, counts, by)
        assert sum(new_counts) == sum(counts)
        for i, c in enumerate(counts):
            if c:  # the old bucket's upper bound lies inside the new bucket
                ub = exphist.upper_bound(scale, offset + i)
                j = offset + i >> by
                assert exphist.upper_bound(scale - by, j - 1) < ub <= exphist.upper_bound(scale - by, j) * (1 + 1e-12)
                assert new_counts[j - new_offset] >= c


def test_add_and_sub() -> None:
    a = (2, (1, 2))
    b = (0, (5,))
    assert exphist.add_buckets(a, b) == (0, (5, 0, 1, 2))
    assert exphist.sub_buckets((0, (5, 0, 1, 2)), a) == (0, (5, 0, 0, 0))
    assert exphist.sub_buckets(a, b) is None
    assert exphist.add_buckets((0, ()), b) == b


def test_native_spans_spec_example() -> None:
    # OTLP offset -1 with counts [2,1,0,0,3,0,0,0,1]: native keys 0,1,4,8 (key = index + 1).
    spans, deltas = exphist.native_spans(-1, (2, 1, 0, 0, 3, 0, 0, 0, 1))
    assert spans == [(0, 5), (3, 1)]  # gaps of 2 stay inside a span, the gap of 3 starts a new one
    assert deltas == [2, -1, -1, 0, 3, -2]
    assert exphist.native_spans(0, ()) == ([], [])
    assert exphist.native_spans(0, (0, 0)) == ([], [])


def test_native_spans_roundtrip() -> None:
    rng = random.Random(5)
    for _ in range(200):
        offset = rng.randrange(-20, 20)
        counts = tuple(rng.choice((0, 0, 0, 1, 4)) for _ in range(rng.randrange(0, 30)))
        spans, deltas = exphist.native_spans(offset, counts)
        decoded: dict[int, int] = {}
        key, prev, di = 0, 0, 0
        for n, (off, length) in enumerate(spans):
            key = off if n == 0 else key + off
            for _ in range(length):
                prev += deltas[di]
                di += 1
                decoded[key] = prev
                key += 1
        expected = {offset + i + 1: c for i, c in enumerate(counts) if c}
        assert {k: v for k, v in decoded.items() if v} == expected


@pytest.mark.parametrize(("scale", "index", "bound"), [(0, 0, 2.0), (0, -1, 1.0), (1, 1, 2.0), (3, 7, 2.0),
                                                       (-1, 0, 4.0), (2, 3, 2.0)])
def test_upper_bounds(scale: int, index: int, bound: float) -> None:
    assert math.isclose(exphist.upper_bound(scale, index), bound)


def test_classic_counts_never_place_observations_below_their_bucket() -> None:
    bounds = (0.5, 1.0, 2.0, 5.0)
    # scale 0: bucket i covers (2**i, 2**(i+1)]; offset -2 -> (0.25,0.5], (0.5,1], (1,2], (2,4], (4,8]
    counts = exphist.classic_counts(0, 3, 0.0, (-2, (1, 1, 1, 1, 1)), (0, ()), bounds)
    assert counts == (3 + 1, 1, 1, 1, 1)
    # negative buckets: index 0 covers [-2, -1): upper edge -1 -> first bound >= -1 is 0.5
    assert exphist.classic_counts(0, 0, 0.0, (0, ()), (0, (2,)), bounds) == (2, 0, 0, 0, 0)
    assert exphist.classic_counts(0, 0, 0.0, (2000, (7,)), (0, ()), bounds) == (0, 0, 0, 0, 7)
