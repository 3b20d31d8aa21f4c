"""Factory of the ``jaeger`` exporter (Jaeger api_v2 gRPC; the collector removed its own in v0.85)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.jaeger.config import Config
from agent.exporters.jaeger.exporter import JaegerExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> JaegerExporter:
    """One exporter instance (traces only)."""
    return JaegerExporter(settings, config, signals)


FACTORY = Factory(
    type="jaeger", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset({Signal.TRACES}), stability=Stability.BETA,
    description="converts spans to the Jaeger api_v2 model and sends them with PostSpans (legacy Jaeger < 1.35)",
)
