"""In-memory data model: OTLP protobuf requests wrapped with their wire bytes.

See :mod:`agent.pdata.data` for the invariants.
"""

from agent.pdata.data import Logs, Metrics, PData, ReadOnlyError, Traces, count_metric_points, new_for

__all__ = ["Logs", "Metrics", "PData", "ReadOnlyError", "Traces", "count_metric_points", "new_for"]
