"""Configuration of the ``prometheusremotewrite`` exporter (remote write 1.0).

Collector keys (``contrib:exporter/prometheusremotewriteexporter``), same
names and defaults unless noted:

* ``endpoint`` (required): the receiver URL, e.g. ``http://prometheus:9090/api/v1/write``
  (Mimir/Cortex ``/api/v1/push``, Thanos ``/api/v1/receive``);
* ``headers`` (e.g. ``X-Scope-OrgID``), ``timeout`` (5s), ``tls`` (for
  ``https://`` URLs: ``ca_file``, ``cert_file``/``key_file``,
  ``insecure_skip_verify``...; ``insecure`` is accepted and, as in the
  collector, the URL scheme decides plaintext vs TLS);
* ``external_labels``: added to every series unless the series has that label;
* ``namespace``, ``add_metric_suffixes`` (true), ``resource_to_telemetry_conversion.enabled``;
* ``target_info.enabled`` (true): one ``target_info`` series per (job, instance);
* ``export_created_metric.enabled`` (false): also send ``<name>_created``;
* ``send_metadata`` (false): add ``MetricMetadata`` (type, help, unit) per request;
* ``remote_write_queue``: ``enabled`` (true), ``queue_size`` (10000),
  ``num_consumers`` (**1**; the collector uses 5, which can reorder the
  samples of a series across concurrent requests, against the spec's "in time
  order" rule); mapped onto the exporter helper's queue;
* ``sending_queue``: the helper's queue block; when given it wins over
  ``remote_write_queue`` (``batch`` is refused: requests are built and
  compressed when they are consumed);
* ``retry_on_failure``: the helper's retry policy.
* ``wal`` is refused (not implemented by otel-sidecar).

otel-sidecar additions (the series store shared with the ``prometheus``
exporter): ``metric_expiration`` (5m; an expired series gets a stale marker),
``max_series``/``max_series_per_metric`` (20000/2000, with the overflow
series), ``exponential_histograms`` (``native``: remote-write native
histograms, the collector's choice; ``classic``: buckets over
``exponential_histogram_buckets``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.config.decode import REQUIRED, Duration
from agent.exporters.helper.config import QueueConfig, RetryConfig, validate_timeout
from agent.exporters.otlp.tls import TLSClientConfig
from agent.exporters.prometheus.config import DEFAULT_EXPONENTIAL_BUCKETS, ResourceToTelemetryConfig

__all__ = ["Config", "EnabledFlag", "RemoteWriteQueue"]

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class EnabledFlag:
    """A ``{enabled: bool}`` block."""

    enabled: bool = True


def _off() -> EnabledFlag:
    return EnabledFlag(False)


@dataclass(frozen=True, slots=True)
class RemoteWriteQueue:
    """``remote_write_queue``: the collector's queue block, mapped onto the helper's queue."""

    enabled: bool = True
    queue_size: int = 10000
    num_consumers: int = 1

    def validate(self) -> Problems:
        out: Problems = []
        if self.queue_size <= 0:
            out.append(("queue_size", "must be positive"))
        if self.num_consumers <= 0:
            out.append(("num_consumers", "must be positive"))
        return out


@dataclass(frozen=True)
class Config:
    """The ``prometheusremotewrite`` exporter's YAML block (see the module docstring)."""

    endpoint: str = field(default="", metadata=REQUIRED)
    headers: dict[str, str] = field(default_factory=dict)
    timeout: Duration = 5.0
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    external_labels: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    add_metric_suffixes: bool = True
    resource_to_telemetry_conversion: ResourceToTelemetryConfig = field(default_factory=ResourceToTelemetryConfig)
    target_info: EnabledFlag = field(default_factory=EnabledFlag)
    export_created_metric: EnabledFlag = field(default_factory=_off)
    send_metadata: bool = False
    remote_write_queue: RemoteWriteQueue = field(default_factory=RemoteWriteQueue)
    sending_queue: QueueConfig | None = None
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)
    metric_expiration: Duration = 300.0
    max_series: int = 20000
    max_series_per_metric: int = 2000
    exponential_histograms: Literal["native", "classic"] = "native"
    exponential_histogram_buckets: tuple[float, ...] = DEFAULT_EXPONENTIAL_BUCKETS
    wal: dict[str, Any] | None = None

    @property
    def queue(self) -> QueueConfig:
        """The helper's queue: ``sending_queue`` when given, else ``remote_write_queue``."""
        if self.sending_queue is not None:
            return self.sending_queue
        rwq = self.remote_write_queue
        return QueueConfig(enabled=rwq.enabled, queue_size=rwq.queue_size, num_consumers=rwq.num_consumers)

    def validate(self) -> Problems:
        out: Problems = list(validate_timeout(self.timeout))
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            out.append(("endpoint", f"invalid URL {self.endpoint!r}: expected http(s)://host[:port]/path"))
        if self.wal is not None:
            out.append(("wal", "the write-ahead log is not implemented by otel-sidecar; remove the wal block "
                               "(the sending queue and retries still apply)"))
        if self.sending_queue is not None and self.sending_queue.batch is not None:
            out.append(("sending_queue.batch", "not supported by prometheusremotewrite: each request is encoded "
                                               "and compressed when consumed"))
        if self.metric_expiration < 0:
            out.append(("metric_expiration", "must not be negative (0 disables expiry)"))
        if self.max_series < 0 or self.max_series_per_metric < 0:
            out.append(("max_series", "caps must not be negative (0 disables a cap)"))
        bounds = self.exponential_histogram_buckets
        if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            out.append(("exponential_histogram_buckets", "bounds must be finite and strictly increasing"))
        for name in self.external_labels:
            if not name or name.startswith("__"):
                out.append(("external_labels", f"invalid label name {name!r}"))
        return out
