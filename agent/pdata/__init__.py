"""In-memory data model: OTLP protobuf requests wrapped with their wire bytes.

See :mod:`agent.pdata.data` for the invariants; :mod:`agent.pdata.attributes`
reads and writes attribute values, :mod:`agent.pdata.wire` holds the protobuf
wire helpers (view classes, varints) of the code that works on request bytes.
"""

from agent.pdata.data import Logs, Metrics, PData, ReadOnlyError, Traces, count_metric_points, new_for

__all__ = ["Logs", "Metrics", "PData", "ReadOnlyError", "Traces", "count_metric_points", "new_for"]
