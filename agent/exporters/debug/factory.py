"""Factory of the ``debug`` exporter (the collector's ``debug``; development stability)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.debug.config import Config
from agent.exporters.debug.exporter import DebugExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> DebugExporter:
    """One exporter instance serving ``signals``."""
    return DebugExporter(settings, config, signals)


FACTORY = Factory(
    type="debug", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset(Signal), stability=Stability.DEVELOPMENT,
    description="logs counts (basic), one line per item (normal) or a full dump (detailed)",
)
