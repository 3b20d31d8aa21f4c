"""Factory of the ``span_metrics`` connector (traces -> metrics; alias ``spanmetrics``)."""

from __future__ import annotations

from collections.abc import Mapping

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.connectors.span_metrics.config import Config
from agent.connectors.span_metrics.connector import SpanMetricsConnector

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, consumers: Mapping[Signal, object]) -> SpanMetricsConnector:
    """One connector instance per id, feeding every metrics pipeline that names it as a receiver."""
    return SpanMetricsConnector(settings, config, consumers)


FACTORY = Factory(
    type="span_metrics", kind=Kind.CONNECTOR, config_class=Config, create=create,
    connects=frozenset({(Signal.TRACES, Signal.METRICS)}), aliases=("spanmetrics",), stability=Stability.ALPHA,
    description="aggregates request, error and duration (RED) metrics from spans",
)
