"""Configuration of the ``span_metrics`` connector (alias ``spanmetrics``): the collector's keys.

Keys and defaults (``contrib:connector/spanmetricsconnector``):

* ``histogram``: ``disable`` (false); ``unit`` ``ms`` (default, as the
  collector without its ``useSecondAsDefaultMetricsUnit`` gate) or ``s``;
  either ``explicit.buckets`` (durations; default 2ms 4ms 6ms 8ms 10ms 50ms
  100ms 200ms 400ms 800ms 1s 1400ms 2s 5s 10s 15s) or ``exponential.max_size``
  (160 buckets). ``histogram.dimensions`` must be empty (not implemented).
* ``dimensions``: list of ``{name, default}``, looked up in the span's
  attributes, then its resource's; a missing one takes ``default``, or is
  left out of the series when there is no default. ``calls_dimensions`` must
  be empty (not implemented).
* ``exclude_dimensions``: default dimensions (``service.name``,
  ``span.name``, ``span.kind``, ``status.code``) to leave out.
* ``namespace`` (``traces.span.metrics``): prefix of ``calls`` and ``duration``.
* ``metrics_flush_interval`` (60s), ``metrics_expiration`` (0: never; a
  series without spans for that long is removed).
* ``aggregation_temporality``: ``AGGREGATION_TEMPORALITY_CUMULATIVE``
  (default) or ``AGGREGATION_TEMPORALITY_DELTA``.
* ``aggregation_cardinality_limit`` (0: off): series per resource; spans of
  new series beyond it go to one overflow series per resource whose only
  attribute is ``otel.metric.overflow=true``.
* ``exemplars``: ``enabled`` (false), ``max_per_data_point`` (5).
* ``resource_metrics_key_attributes``: resource attributes that identify a
  resource (default: all of them); ``resource_metrics_cache_size`` (1000):
  resources kept, least recently used evicted.
* ``dimensions_cache_size``: deprecated by the collector in favour of
  ``aggregation_cardinality_limit``; accepted and ignored with a warning.
* ``metric_timestamp_cache_size``: accepted; no effect (delta start times
  are kept per live series).
* ``events``: only ``enabled: false`` (the ``events`` metric is not
  implemented); ``include_instrumentation_scope`` must be empty.

otel-sidecar addition: ``derive_dimensions`` (true): a dimension missing from
a span is also looked up under its other semantic-conventions name
(``http.method`` for ``http.request.method``, ``db.statement`` for
``db.query.text``, ``db.operation`` / ``db.sql.table`` for
``db.operation.name`` / ``db.collection.name``...), and on DB client spans
(``db.system.name``/``db.system`` set) ``db.operation.name``,
``db.collection.name`` and ``db.query.summary`` are derived from the
sanitised statement when the span lacks them (see
:mod:`agent.connectors.sql`). An operation attribute that holds more than
one word (SQLAlchemy instrumentation writes ``"SELECT mydb"``) is replaced by
the statement's operation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Final, Literal

from agent.config.decode import REQUIRED, Duration

__all__ = [
    "CUMULATIVE",
    "DEFAULT_BUCKETS",
    "DEFAULT_DIMENSIONS",
    "DELTA",
    "Config",
    "Dimension",
    "EventsConfig",
    "ExemplarsConfig",
    "ExplicitConfig",
    "ExponentialConfig",
    "HistogramConfig",
]

CUMULATIVE: Final = "AGGREGATION_TEMPORALITY_CUMULATIVE"
DELTA: Final = "AGGREGATION_TEMPORALITY_DELTA"
#: The collector's default explicit bounds, in seconds.
DEFAULT_BUCKETS: Final[tuple[float, ...]] = (0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4,
                                             2.0, 5.0, 10.0, 15.0)
#: The dimensions every series has (unless excluded).
DEFAULT_DIMENSIONS: Final = ("service.name", "span.name", "span.kind", "status.code")

Problems = list[tuple[str, str]]
Temporality = Literal["AGGREGATION_TEMPORALITY_CUMULATIVE", "AGGREGATION_TEMPORALITY_DELTA"]


@dataclass(frozen=True, slots=True)
class Dimension:
    """One extra dimension: an attribute ``name`` and the value used when it is missing."""

    name: str = field(default="", metadata=REQUIRED)
    default: str | None = None


@dataclass(frozen=True, slots=True)
class ExplicitConfig:
    """``histogram.explicit``: bucket bounds as durations (``[2ms, 10ms, 1s]``)."""

    buckets: tuple[Duration, ...] = DEFAULT_BUCKETS

    def validate(self) -> Problems:
        b = self.buckets
        if not b:
            return [("buckets", "at least one bucket bound is required")]
        if any(x <= 0 for x in b) or any(x >= y for x, y in itertools.pairwise(b)):
            return [("buckets", "bounds must be positive and strictly increasing")]
        return []


@dataclass(frozen=True, slots=True)
class ExponentialConfig:
    """``histogram.exponential``: buckets per positive range (the collector's default 160)."""

    max_size: int = 160

    def validate(self) -> Problems:
        return [("max_size", "must be at least 2")] if self.max_size < 2 else []


@dataclass(frozen=True, slots=True)
class HistogramConfig:
    """``histogram``: the ``duration`` metric."""

    disable: bool = False
    unit: Literal["ms", "s"] = "ms"
    explicit: ExplicitConfig | None = None
    exponential: ExponentialConfig | None = None
    dimensions: tuple[Dimension, ...] = ()

    def validate(self) -> Problems:
        out: Problems = []
        if self.explicit is not None and self.exponential is not None:
            out.append(("", "use either `explicit` or `exponential` buckets histogram"))
        if self.dimensions:
            out.append(("dimensions", "histogram-only dimensions are not implemented by otel-sidecar; "
                                      "use `dimensions`"))
        return out


@dataclass(frozen=True, slots=True)
class ExemplarsConfig:
    """``exemplars``: trace and span ids of recent spans on ``calls`` and ``duration`` points."""

    enabled: bool = False
    max_per_data_point: int = 5

    def validate(self) -> Problems:
        return [("max_per_data_point", "must be at least 1")] if self.max_per_data_point < 1 else []


@dataclass(frozen=True, slots=True)
class EventsConfig:
    """``events``: the collector's span-event counter (not implemented: ``enabled`` must stay false)."""

    enabled: bool = False
    dimensions: tuple[Dimension, ...] = ()

    def validate(self) -> Problems:
        if self.enabled:
            return [("enabled", "the span events metric is not implemented by otel-sidecar")]
        return []


@dataclass(frozen=True)
class Config:
    """The ``span_metrics`` connector's YAML block (see the module docstring)."""

    histogram: HistogramConfig = field(default_factory=HistogramConfig)
    dimensions: tuple[Dimension, ...] = ()
    calls_dimensions: tuple[Dimension, ...] = ()
    exclude_dimensions: tuple[str, ...] = ()
    namespace: str = "traces.span.metrics"
    metrics_flush_interval: Duration = 60.0
    metrics_expiration: Duration = 0.0
    aggregation_temporality: Temporality = CUMULATIVE
    aggregation_cardinality_limit: int = 0
    exemplars: ExemplarsConfig = field(default_factory=ExemplarsConfig)
    resource_metrics_key_attributes: tuple[str, ...] = ()
    resource_metrics_cache_size: int = 1000
    dimensions_cache_size: int = 0
    metric_timestamp_cache_size: int = 0
    events: EventsConfig = field(default_factory=EventsConfig)
    include_instrumentation_scope: tuple[str, ...] = ()
    derive_dimensions: bool = True

    @property
    def delta(self) -> bool:
        return self.aggregation_temporality == DELTA

    @property
    def unit_seconds(self) -> float:
        """Seconds per unit of the ``duration`` metric."""
        return 1.0 if self.histogram.unit == "s" else 0.001

    @property
    def bounds(self) -> tuple[float, ...]:
        """Explicit bucket bounds in the histogram's unit."""
        secs = self.histogram.explicit.buckets if self.histogram.explicit is not None else DEFAULT_BUCKETS
        per = self.unit_seconds
        return tuple(round(b / per, 9) for b in secs)

    def validate(self) -> Problems:
        out: Problems = []
        seen = set(DEFAULT_DIMENSIONS)
        for i, d in enumerate(self.dimensions):
            if d.name in seen:
                out.append((f"dimensions[{i}].name", f"duplicate dimension name {d.name!r}"))
            seen.add(d.name)
        if self.calls_dimensions:
            out.append(("calls_dimensions", "calls-only dimensions are not implemented by otel-sidecar; "
                                            "use `dimensions`"))
        if self.include_instrumentation_scope:
            out.append(("include_instrumentation_scope", "not implemented by otel-sidecar"))
        if self.metrics_flush_interval <= 0:
            out.append(("metrics_flush_interval", "must be positive"))
        if self.metrics_expiration < 0:
            out.append(("metrics_expiration", "must not be negative (0: series never expire)"))
        if self.aggregation_cardinality_limit < 0:
            out.append(("aggregation_cardinality_limit", "must not be negative (0: no limit)"))
        if self.resource_metrics_cache_size < 1:
            out.append(("resource_metrics_cache_size", "must be positive"))
        if self.dimensions_cache_size < 0:
            out.append(("dimensions_cache_size", "must not be negative"))
        if self.metric_timestamp_cache_size < 0:
            out.append(("metric_timestamp_cache_size", "must not be negative"))
        return out
