"""Factory of the ``memory_limiter`` processor.

The pipelines using one ``memory_limiter`` id share one :class:`MemoryMonitor`
(as the collector shares one limiter per id): one measurement task, one set of
state-change logs. Monitors are kept per :class:`SelfMetrics` instance, i.e.
per service, so separate services in one process (tests) never share state.
"""

from __future__ import annotations

import weakref

from agent.component import ComponentID, Settings, Signal
from agent.processors.base import processor_factory
from agent.processors.memory_limiter.config import Config
from agent.processors.memory_limiter.processor import MemoryLimiterProcessor, MemoryMonitor
from agent.telemetry.metrics import SelfMetrics

__all__ = ["FACTORY", "create"]

_MONITORS: weakref.WeakKeyDictionary[SelfMetrics, dict[tuple[ComponentID, Config], MemoryMonitor]] = (
    weakref.WeakKeyDictionary())


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> MemoryLimiterProcessor:
    """One memory_limiter processor for one pipeline, sharing its id's monitor."""
    monitors = _MONITORS.setdefault(settings.telemetry, {})
    key = (settings.id, config)
    monitor = monitors.get(key)
    if monitor is None:
        monitor = monitors[key] = MemoryMonitor.from_config(config, settings.logger)
    return MemoryLimiterProcessor(settings, config, signal, next_consumer, monitor=monitor)


FACTORY = processor_factory(
    "memory_limiter", Config, MemoryLimiterProcessor, create=create,
    description="Refuses data (retryable) while the process's memory is above a soft limit.",
)
