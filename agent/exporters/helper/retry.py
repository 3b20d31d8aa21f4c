"""Exponential backoff with jitter, as the collector's retry sender computes it.

:class:`Backoff` reproduces ``cenkalti/backoff``'s ``ExponentialBackOff`` used by
``exporterhelper``: each call to :meth:`Backoff.next` returns the current
interval randomized to ``interval * (1 ± randomization_factor)``, then grows the
interval by ``multiplier`` up to ``max_interval``. The randomized value may
exceed ``max_interval`` by the randomization factor, as upstream.

The policy around it (permanent errors are never retried, the wait is
``max(backoff, server retry_after)``, a request is given up when the next try
would start after ``max_elapsed_time``) lives in
:class:`~agent.exporters.helper.ExporterHelper`.
"""

from __future__ import annotations

import random

from agent.exporters.helper.config import RetryConfig

__all__ = ["Backoff"]


class Backoff:
    """One request's backoff sequence. Not shared between requests.

    Args:
        initial_interval: first interval, in seconds.
        multiplier: growth factor applied after each call.
        max_interval: cap of the un-randomized interval.
        randomization_factor: jitter, within [0, 1].
        rng: source of randomness (inject a seeded one in tests).
    """

    __slots__ = ("_current", "_factor", "_max", "_multiplier", "_rng")

    def __init__(self, initial_interval: float, multiplier: float, max_interval: float,
                 randomization_factor: float, rng: random.Random | None = None) -> None:
        self._current = max(0.0, initial_interval)
        self._multiplier = multiplier
        self._max = max(0.0, max_interval)
        self._factor = min(1.0, max(0.0, randomization_factor))
        self._rng = rng or random.Random()

    @classmethod
    def from_config(cls, cfg: RetryConfig, rng: random.Random | None = None) -> Backoff:
        return cls(cfg.initial_interval, cfg.multiplier, cfg.max_interval, cfg.randomization_factor, rng)

    def next(self) -> float:
        """The next wait, in seconds."""
        current = self._current
        delta = self._factor * current
        value = current - delta + self._rng.random() * 2 * delta if delta else current
        if self._multiplier > 0 and current >= self._max / self._multiplier:
            self._current = self._max
        else:
            self._current = current * self._multiplier
        return value
