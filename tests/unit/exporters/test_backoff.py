"""Backoff: cenkalti/backoff's exponential sequence with jitter."""

from __future__ import annotations

import random

from agent.exporters.helper import Backoff, RetryConfig


def test_sequence_without_jitter_grows_and_caps() -> None:
    b = Backoff(1.0, 2.0, 10.0, 0.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_collector_defaults_stay_within_jitter_bounds() -> None:
    b = Backoff.from_config(RetryConfig(), random.Random(1))
    base = 5.0
    for _ in range(12):
        value = b.next()
        assert base * 0.5 <= value <= base * 1.5
        base = 30.0 if base >= 30.0 / 1.5 else base * 1.5


def test_zero_multiplier_and_interval_do_not_crash() -> None:
    b0 = Backoff(1.0, 0.0, 5.0, 0.0)
    assert [b0.next() for _ in range(3)] == [1.0, 0.0, 0.0]
    b = Backoff(0.0, 1.5, 0.0, 0.5)
    assert b.next() == 0.0 and b.next() == 0.0
