"""Factory of the ``otlp`` exporter (alias ``otlp_grpc``, the collector's new name)."""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.otlp.config import Config
from agent.exporters.otlp.exporter import OTLPGrpcExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> OTLPGrpcExporter:
    """One exporter instance serving ``signals``."""
    return OTLPGrpcExporter(settings, config, signals)


FACTORY = Factory(
    type="otlp", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset(Signal), aliases=("otlp_grpc",), stability=Stability.BETA,
    description="OTLP over gRPC; forwards unmodified batches as their original bytes",
)
