"""Factory of the ``prometheusremotewrite`` exporter (metrics only)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.prometheusremotewrite.config import Config
from agent.exporters.prometheusremotewrite.exporter import RemoteWriteExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> RemoteWriteExporter:
    """One exporter instance (metrics)."""
    return RemoteWriteExporter(settings, config, signals)


FACTORY = Factory(
    type="prometheusremotewrite", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset({Signal.METRICS}), stability=Stability.BETA,
    description="pushes cumulative series with Prometheus remote write 1.0 (snappy protobuf)",
)
