"""Factory of the ``batch`` processor."""

from __future__ import annotations

from agent.component import Capabilities, Factory, Kind, Settings, Signal, Stability
from agent.processors.batch.config import Config
from agent.processors.batch.processor import BatchProcessor

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> BatchProcessor:
    """One batch processor for one pipeline."""
    return BatchProcessor(settings, config, signal, next_consumer)


FACTORY = Factory(
    type="batch",
    kind=Kind.PROCESSOR,
    config_class=Config,
    create=create,
    signals=frozenset(Signal),
    capabilities=Capabilities(mutates_data=False),
    stability=Stability.BETA,
    description="Groups items into larger requests by size (send_batch_size) or age (timeout).",
)
