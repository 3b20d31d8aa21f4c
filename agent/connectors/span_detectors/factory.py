"""Factory of the ``span_detectors`` connector (traces -> logs, traces -> metrics)."""

from __future__ import annotations

from collections.abc import Mapping

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.connectors.span_detectors.config import Config
from agent.connectors.span_detectors.connector import SpanDetectorsConnector

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, consumers: Mapping[Signal, object]) -> SpanDetectorsConnector:
    """One connector instance per id, feeding every logs and metrics pipeline that names it as a receiver."""
    return SpanDetectorsConnector(settings, config, consumers)


FACTORY = Factory(
    type="span_detectors", kind=Kind.CONNECTOR, config_class=Config, create=create,
    connects=frozenset({(Signal.TRACES, Signal.LOGS), (Signal.TRACES, Signal.METRICS)}),
    stability=Stability.ALPHA,
    description="reports slow requests, slow queries and N+1 queries found in spans as logs and counters",
)
