"""Factory of the ``resource`` processor."""

from __future__ import annotations

from agent.component import Capabilities, Factory, Kind, Settings, Signal, Stability
from agent.processors.resource.config import Config
from agent.processors.resource.processor import ResourceProcessor

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> ResourceProcessor:
    """One resource processor for one pipeline."""
    return ResourceProcessor(settings, config, signal, next_consumer)


FACTORY = Factory(
    type="resource",
    kind=Kind.PROCESSOR,
    config_class=Config,
    create=create,
    signals=frozenset(Signal),
    capabilities=Capabilities(mutates_data=True),
    stability=Stability.BETA,
    description="Inserts, updates, deletes, hashes, extracts or converts resource attributes.",
)
