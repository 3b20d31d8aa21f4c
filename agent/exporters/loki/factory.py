"""Factory of the ``loki`` exporter (Loki push API; logs only; beta in otel-sidecar).

The collector-contrib ``loki`` exporter was removed in 2025 in favour of
Loki's native OTLP ingest (``otlphttp`` to ``http://loki:3100/otlp``). This one
keeps the push API with labels, structured metadata and line format owned by
the sidecar; see :mod:`agent.exporters.loki.config` for its keys.
"""

from __future__ import annotations

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.exporters.loki.config import Config
from agent.exporters.loki.exporter import LokiExporter

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signals: frozenset[Signal]) -> LokiExporter:
    """One exporter instance (one HTTP client) for the logs pipelines that name it."""
    return LokiExporter(settings, config, signals)


FACTORY = Factory(
    type="loki", kind=Kind.EXPORTER, config_class=Config, create=create,
    signals=frozenset({Signal.LOGS}), stability=Stability.BETA,
    description="pushes logs to Loki's /loki/api/v1/push (snappy protobuf or JSON) with labels and "
                "structured metadata",
)
