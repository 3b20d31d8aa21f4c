"""Configuration of the ``prometheus`` exporter (the collector's keys, plus cardinality caps).

Collector keys (``contrib:exporter/prometheusexporter``), same names and defaults:
``endpoint`` (required), ``namespace``, ``const_labels``, ``send_timestamps``
(false), ``metric_expiration`` (5m), ``resource_to_telemetry_conversion.enabled``
(false), ``enable_open_metrics`` (false), ``add_metric_suffixes`` (true),
``without_scope_info`` (false), ``translation_strategy`` (unset: decided by
``add_metric_suffixes``), ``sending_queue`` (accepted for compatibility; see
:class:`Config`).

otel-sidecar additions:

* ``max_series`` (20000) and ``max_series_per_metric`` (2000): cardinality caps;
  0 disables a cap. A point that would create a series beyond a cap is folded
  into its metric's overflow series ``{otel_metric_overflow="true"}`` and the
  refused series is counted in ``otelcol_exporter_prometheus_refused_series_total``.
* ``exponential_histogram_buckets``: the explicit bounds used to show
  exponential histograms as classic histograms in the text formats (default: the
  Prometheus client default seconds layout).
* ``unit_1_as_ratio`` (false): append ``_ratio`` to gauges with unit ``1``, as
  otlptranslator and the collector do (the 2026 spec no longer does).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Final

from agent.config.decode import REQUIRED, Duration
from agent.exporters.helper.config import QueueConfig
from agent.netutil import parse_endpoint

__all__ = ["DEFAULT_EXPONENTIAL_BUCKETS", "STRATEGIES", "Config", "ResourceToTelemetryConfig"]

#: The Prometheus client libraries' default histogram layout, in seconds.
DEFAULT_EXPONENTIAL_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Supported ``translation_strategy`` values -> "add suffixes".
STRATEGIES: Final = {"UnderscoreEscapingWithSuffixes": True, "UnderscoreEscapingWithoutSuffixes": False}
_UNSUPPORTED_STRATEGIES: Final = ("NoUTF8EscapingWithSuffixes", "NoTranslation")

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ResourceToTelemetryConfig:
    """``resource_to_telemetry_conversion``: copy every resource attribute onto every series."""

    enabled: bool = False


@dataclass(frozen=True)
class Config:
    """The ``prometheus`` exporter's YAML block.

    Attributes:
        endpoint: ``host:port`` serving ``/metrics`` (required).
        namespace: prefix of every metric name (``<namespace>_``).
        const_labels: labels added to every series (merged like attribute labels).
        send_timestamps: expose each sample with its point's timestamp.
        metric_expiration: a series not updated for this long is removed (0:
            never). Enforced by a timer, whether or not anybody scrapes.
        resource_to_telemetry_conversion: copy resource attributes onto every series.
        enable_open_metrics: negotiate OpenMetrics 1.0 (with exemplars, ``_created``
            and ``# UNIT``) when the scraper asks for it; otherwise text 0.0.4.
        add_metric_suffixes: append unit and ``_total`` suffixes.
        without_scope_info: leave out the ``otel_scope_*`` labels.
        translation_strategy: ``UnderscoreEscapingWithSuffixes`` or
            ``UnderscoreEscapingWithoutSuffixes``; overrides ``add_metric_suffixes``.
        max_series: cap on the number of series of the whole exporter (0: none).
        max_series_per_metric: cap per metric family (0: none).
        exponential_histogram_buckets: classic bounds for exponential histograms in text formats.
        unit_1_as_ratio: ``_ratio`` suffix for gauges with unit ``1``.
        sending_queue: accepted so collector configs load; it has no effect,
            because points are folded into the exporter's store synchronously
            (nothing to queue, no retryable failure).
    """

    endpoint: str = field(default="", metadata=REQUIRED)
    namespace: str = ""
    const_labels: dict[str, str] = field(default_factory=dict)
    send_timestamps: bool = False
    metric_expiration: Duration = 300.0
    resource_to_telemetry_conversion: ResourceToTelemetryConfig = field(default_factory=ResourceToTelemetryConfig)
    enable_open_metrics: bool = False
    add_metric_suffixes: bool = True
    without_scope_info: bool = False
    translation_strategy: str = ""
    max_series: int = 20000
    max_series_per_metric: int = 2000
    exponential_histogram_buckets: tuple[float, ...] = DEFAULT_EXPONENTIAL_BUCKETS
    unit_1_as_ratio: bool = False
    sending_queue: QueueConfig | None = None

    @property
    def with_suffixes(self) -> bool:
        """Whether unit and type suffixes are appended (strategy first, then the deprecated flag)."""
        if self.translation_strategy:
            return STRATEGIES[self.translation_strategy]
        return self.add_metric_suffixes

    def validate(self) -> Problems:
        out: Problems = []
        try:
            parse_endpoint(self.endpoint)
        except ValueError as e:
            out.append(("endpoint", str(e)))
        if self.metric_expiration < 0:
            out.append(("metric_expiration", "must not be negative (0 disables expiry)"))
        if self.max_series < 0:
            out.append(("max_series", "must not be negative (0 disables the cap)"))
        if self.max_series_per_metric < 0:
            out.append(("max_series_per_metric", "must not be negative (0 disables the cap)"))
        if self.translation_strategy and self.translation_strategy not in STRATEGIES:
            if self.translation_strategy in _UNSUPPORTED_STRATEGIES:
                why = "is not supported by otel-sidecar (UTF-8 metric names are not served)"
            else:
                why = "is not a translation strategy"
            out.append(("translation_strategy", f"{self.translation_strategy!r} {why}; use one of "
                                                 f"{', '.join(STRATEGIES)}"))
        bounds = self.exponential_histogram_buckets
        if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            out.append(("exponential_histogram_buckets", "bounds must be finite and strictly increasing"))
        for key in self.const_labels:
            if not key:
                out.append(("const_labels", "label names must not be empty"))
        return out
