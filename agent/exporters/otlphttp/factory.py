"""Factory of the ``otlphttp`` exporter (alias ``otlp_http``, the collector's new name)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.otlphttp.config import Config
from agent.exporters.otlphttp.exporter import OTLPHttpExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> OTLPHttpExporter:
    """One exporter instance serving ``signals``."""
    return OTLPHttpExporter(settings, config, signals)


FACTORY = Factory(
    type="otlphttp", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset(Signal), aliases=("otlp_http",), stability=Stability.BETA,
    description="OTLP over HTTP (protobuf or JSON); forwards unmodified batches as their original bytes",
)
