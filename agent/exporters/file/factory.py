"""Factory of the ``file`` exporter (collector-contrib's ``file``; alpha stability)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.file.config import Config
from agent.exporters.file.exporter import FileExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> FileExporter:
    """One exporter instance (one file) serving ``signals``."""
    return FileExporter(settings, config, signals)


FACTORY = Factory(
    type="file", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset(Signal), stability=Stability.ALPHA,
    description="writes OTLP/JSON lines or length-prefixed OTLP protobuf to a file, with rotation",
)
