"""Configuration of the ``span_detectors`` connector (an otel-sidecar component, collector-style keys).

Detectors (each with ``enabled``, default true):

* ``slow_requests.threshold`` (1s): a server span lasting at least this long;
* ``slow_queries.threshold`` (100ms): a DB client span (``db.system.name`` or
  ``db.system`` set, with a statement) lasting at least this long;
* ``n_plus_one.threshold`` (10): within one trace, one sanitised statement
  executed **more than** this many times under one parent span.

Trace buffering (for the detectors that need the whole trace):

* ``trace_window`` (30s): a trace is evaluated at the latest this long after
  its first span arrived;
* ``root_span_wait`` (2s): ... or this long after its local root span (the
  server span that started it here) arrived, whichever comes first;
* ``max_traces`` (10000): traces buffered at most; the oldest is evaluated
  early when a new one arrives at a full buffer (counted as evicted).

Output:

* ``namespace`` (``span_detectors``): prefix of the finding counters
  ``<namespace>.slow_requests``, ``.slow_queries`` and ``.n_plus_one``;
* ``metrics_flush_interval`` (15s): how often the counters are emitted;
* ``metrics_expiration`` (0: never): a counter without findings for this
  long is no longer emitted (and forgotten; it restarts from 0);
* ``aggregation_temporality``: ``AGGREGATION_TEMPORALITY_CUMULATIVE``
  (default) or ``AGGREGATION_TEMPORALITY_DELTA``;
* ``aggregation_cardinality_limit`` (1000): attribute sets per counter; more
  go to one ``otel.metric.overflow=true`` series (0: no limit);
* ``max_statement_length`` (2048): sanitised statements in log records are
  cut to this many characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from agent.config.decode import Duration

__all__ = ["CUMULATIVE", "DELTA", "Config", "NPlusOneConfig", "SlowQueriesConfig", "SlowRequestsConfig"]

CUMULATIVE: Final = "AGGREGATION_TEMPORALITY_CUMULATIVE"
DELTA: Final = "AGGREGATION_TEMPORALITY_DELTA"

Problems = list[tuple[str, str]]
Temporality = Literal["AGGREGATION_TEMPORALITY_CUMULATIVE", "AGGREGATION_TEMPORALITY_DELTA"]


@dataclass(frozen=True, slots=True)
class SlowRequestsConfig:
    """``slow_requests``: server spans at or above ``threshold``."""

    enabled: bool = True
    threshold: Duration = 1.0

    def validate(self) -> Problems:
        return [("threshold", "must be positive")] if self.threshold <= 0 else []


@dataclass(frozen=True, slots=True)
class SlowQueriesConfig:
    """``slow_queries``: DB client spans at or above ``threshold``."""

    enabled: bool = True
    threshold: Duration = 0.1

    def validate(self) -> Problems:
        return [("threshold", "must be positive")] if self.threshold <= 0 else []


@dataclass(frozen=True, slots=True)
class NPlusOneConfig:
    """``n_plus_one``: a statement repeated more than ``threshold`` times under one parent span."""

    enabled: bool = True
    threshold: int = 10

    def validate(self) -> Problems:
        return [("threshold", "must be at least 1")] if self.threshold < 1 else []


@dataclass(frozen=True)
class Config:
    """The ``span_detectors`` connector's YAML block (see the module docstring)."""

    slow_requests: SlowRequestsConfig = field(default_factory=SlowRequestsConfig)
    slow_queries: SlowQueriesConfig = field(default_factory=SlowQueriesConfig)
    n_plus_one: NPlusOneConfig = field(default_factory=NPlusOneConfig)
    trace_window: Duration = 30.0
    root_span_wait: Duration = 2.0
    max_traces: int = 10000
    namespace: str = "span_detectors"
    metrics_flush_interval: Duration = 15.0
    metrics_expiration: Duration = 0.0
    aggregation_temporality: Temporality = CUMULATIVE
    aggregation_cardinality_limit: int = 1000
    max_statement_length: int = 2048

    @property
    def delta(self) -> bool:
        return self.aggregation_temporality == DELTA

    @property
    def tick_interval(self) -> float:
        """How often buffered traces are checked and findings sent: within [10 ms, 1 s]."""
        return max(0.01, min(1.0, self.root_span_wait / 2, self.trace_window / 10))

    def validate(self) -> Problems:
        out: Problems = []
        if self.trace_window <= 0:
            out.append(("trace_window", "must be positive"))
        if self.root_span_wait < 0:
            out.append(("root_span_wait", "must not be negative"))
        elif self.root_span_wait > self.trace_window > 0:
            out.append(("root_span_wait", "must not exceed trace_window"))
        if self.max_traces < 1:
            out.append(("max_traces", "must be at least 1"))
        if self.metrics_flush_interval <= 0:
            out.append(("metrics_flush_interval", "must be positive"))
        if self.metrics_expiration < 0:
            out.append(("metrics_expiration", "must not be negative (0: counters never expire)"))
        if self.aggregation_cardinality_limit < 0:
            out.append(("aggregation_cardinality_limit", "must not be negative (0: no limit)"))
        if self.max_statement_length < 16:
            out.append(("max_statement_length", "must be at least 16"))
        if not (self.slow_requests.enabled or self.slow_queries.enabled or self.n_plus_one.enabled):
            out.append(("", "every detector is disabled"))
        return out
