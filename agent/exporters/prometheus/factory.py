"""Factory of the ``prometheus`` exporter (the collector's ``prometheusexporter``; metrics only)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.prometheus.config import Config
from agent.exporters.prometheus.exporter import PrometheusExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> PrometheusExporter:
    """One exporter instance (it serves the metrics signal only)."""
    return PrometheusExporter(settings, config)


FACTORY = Factory(
    type="prometheus", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset({Signal.METRICS}), stability=Stability.BETA,
    description="serves metrics for Prometheus to scrape (text 0.0.4, OpenMetrics, protobuf with native histograms)",
)
