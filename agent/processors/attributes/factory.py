"""Factory of the ``attributes`` processor."""

from __future__ import annotations

from agent.component import Capabilities, Factory, Kind, Settings, Signal, Stability
from agent.processors.attributes.config import Config
from agent.processors.attributes.processor import AttributesProcessor

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> AttributesProcessor:
    """One attributes processor for one pipeline.

    Raises:
        ConfigErrors: ``include``/``exclude`` do not apply to ``signal``.
    """
    return AttributesProcessor(settings, config, signal, next_consumer)


FACTORY = Factory(
    type="attributes",
    kind=Kind.PROCESSOR,
    config_class=Config,
    create=create,
    signals=frozenset(Signal),
    capabilities=Capabilities(mutates_data=True),
    stability=Stability.BETA,
    description="Inserts, updates, deletes, hashes, extracts or converts span, log and data point attributes.",
)
