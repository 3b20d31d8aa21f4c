"""Configuration of the ``memory_limiter`` processor (the collector's keys and defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agent.config.decode import Duration

__all__ = ["DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED", "Config"]

DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED: Final = 10.0


@dataclass(frozen=True, slots=True)
class Config:
    """``processors.memory_limiter``.

    Memory is the process's resident set size (RSS). The hard limit is
    ``limit_mib`` MiB, or ``limit_percentage`` % of the memory available to the
    process (the host's total, capped by a cgroup limit when there is one). The
    soft limit is the hard limit minus the spike limit, which defaults to 20 %
    of the hard limit.

    Attributes:
        check_interval: time between two measurements; required, > 0 (1s is
            the usual choice).
        limit_mib: hard limit in MiB (exclusive with limit_percentage).
        spike_limit_mib: headroom below limit_mib, in MiB (0 = 20 % of limit_mib).
        limit_percentage: hard limit in % of available memory (exclusive with limit_mib).
        spike_limit_percentage: headroom in % of available memory (0 = 20 % of the limit).
        min_gc_interval_when_soft_limited: least time between two forced
            collections while above the soft limit (0 = no minimum).
        min_gc_interval_when_hard_limited: least time between two forced
            collections while above the hard limit (0 = no minimum).
    """

    check_interval: Duration = 0.0
    limit_mib: int = 0
    spike_limit_mib: int = 0
    limit_percentage: int = 0
    spike_limit_percentage: int = 0
    min_gc_interval_when_soft_limited: Duration = DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED
    min_gc_interval_when_hard_limited: Duration = 0.0

    def validate(self) -> list[tuple[str, str]]:
        """Cross-field checks; ``(subpath, message)`` pairs for the decoder."""
        problems: list[tuple[str, str]] = []
        if self.check_interval <= 0:
            problems.append(("check_interval", "must be greater than zero (1s is recommended)"))
        for key in ("limit_mib", "spike_limit_mib", "limit_percentage", "spike_limit_percentage"):
            if getattr(self, key) < 0:
                problems.append((key, "must not be negative"))
        for key in ("min_gc_interval_when_soft_limited", "min_gc_interval_when_hard_limited"):
            if getattr(self, key) < 0:
                problems.append((key, "must not be negative"))
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited:
            problems.append(("min_gc_interval_when_soft_limited",
                             "must be greater than or equal to min_gc_interval_when_hard_limited"))
        if problems:
            return problems
        if self.limit_mib == 0 and self.limit_percentage == 0:
            problems.append(("limit_mib", "one of limit_mib or limit_percentage must be set (greater than zero)"))
        elif self.limit_mib and self.limit_percentage:
            problems.append(("limit_percentage", "set either limit_mib or limit_percentage, not both"))
        elif self.limit_mib:
            if self.spike_limit_percentage:
                problems.append(("spike_limit_percentage",
                                 "applies only with limit_percentage; use spike_limit_mib with limit_mib"))
            if self.spike_limit_mib >= self.limit_mib:
                problems.append(("spike_limit_mib", f"must be smaller than limit_mib ({self.limit_mib})"))
        else:
            if self.spike_limit_mib:
                problems.append(("spike_limit_mib",
                                 "applies only with limit_mib; use spike_limit_percentage with limit_percentage"))
            if self.limit_percentage > 100:
                problems.append(("limit_percentage", "must be at most 100"))
            if self.spike_limit_percentage >= self.limit_percentage:
                problems.append(("spike_limit_percentage",
                                 f"must be smaller than limit_percentage ({self.limit_percentage})"))
        return problems
