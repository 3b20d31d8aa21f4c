"""The ``prometheus`` exporter component: fold on consume, serve on scrape, expire on a timer.

Role: ``consume_metrics`` folds a request into the :class:`~.accumulator.Accumulator`
synchronously on the event loop (a few µs per point; there is no queue, so
nothing can be lost between consume and scrape) and counts the points in
``otelcol_exporter_sent_metric_points``; points it must drop (type conflicts,
``UNSPECIFIED`` temporality, out-of-order or invalid points) are counted in
``otelcol_exporter_send_failed_metric_points`` and, by reason, in
``otelcol_exporter_prometheus_dropped_points_total``.

Lifecycle: ``start`` binds ``endpoint`` (a bind failure fails the start) and
starts the expiry timer, which removes series older than ``metric_expiration``
whether or not anybody scrapes (the collector only expires on scrape,
contrib#46423). ``shutdown`` stops both; it is idempotent and safe without
``start``.

Self-metrics (label ``exporter``): ``otelcol_exporter_prometheus_refused_series_total``
(streams refused by the cardinality caps), ``otelcol_exporter_prometheus_dropped_points_total``
(also labelled ``reason``) and ``otelcol_exporter_prometheus_series`` (current count).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from agent.component import Capabilities, Host, Settings, Signal
from agent.exporters.prometheus.accumulator import DROP_REASONS, Accumulator, Series
from agent.exporters.prometheus.config import Config
from agent.exporters.prometheus.render import RenderOptions
from agent.exporters.prometheus.server import MetricsServer
from agent.exporters.prometheus.translate import Namer
from agent.pdata import Metrics

__all__ = ["PrometheusExporter", "expiry_interval", "make_accumulator"]


def expiry_interval(expiration: float) -> float:
    """How often the expiry timer runs: a tenth of the expiration, within [10 ms, 15 s]."""
    return min(max(expiration / 10, 0.01), 15.0)


def make_accumulator(settings: Settings, *, namer: Namer, expiration: float, max_series: int,
                     max_series_per_metric: int, const_labels: dict[str, str], resource_to_labels: bool,
                     scope_info: bool, openmetrics: bool, exp_bounds: tuple[float, ...],
                     clock: Callable[[], float] = time.monotonic,
                     on_remove: Callable[[Series], None] | None = None) -> Accumulator:
    """An accumulator wired to the exporter's self-metrics (shared with ``prometheusremotewrite``)."""
    t = settings.telemetry
    eid = str(settings.id)
    refused = t.counter("otelcol_exporter_prometheus_refused_series",
                        "Series refused by the cardinality caps (folded into the overflow series).",
                        ["exporter"]).labels(eid)
    dropped_fam = t.counter("otelcol_exporter_prometheus_dropped_points",
                            "Data points dropped before reaching a Prometheus series, by reason.",
                            ["exporter", "reason"])
    acc = Accumulator(
        namer, expiration=expiration, max_series=max_series, max_series_per_metric=max_series_per_metric,
        const_labels=const_labels, resource_to_labels=resource_to_labels, scope_info=scope_info,
        openmetrics=openmetrics, exp_bounds=exp_bounds, clock=clock, on_refused=refused,
        on_dropped={r: dropped_fam.labels(eid, r) for r in DROP_REASONS}, on_remove=on_remove,
        logger=settings.logger,
    )
    t.gauge("otelcol_exporter_prometheus_series", "Series currently held by the exporter.",
            ["exporter"]).labels(eid).set_function(lambda: acc.count)
    return acc


class PrometheusExporter:
    """Pull exporter serving ``/metrics``. See the module docstring.

    Args:
        settings: from the factory.
        config: the decoded config.
        clock: monotonic clock for expiry (tests inject a fake one).
    """

    def __init__(self, settings: Settings, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.config = config
        self.log = settings.logger
        namer = Namer(config.namespace, config.with_suffixes, config.unit_1_as_ratio)
        self.accumulator = make_accumulator(
            settings, namer=namer, expiration=config.metric_expiration, max_series=config.max_series,
            max_series_per_metric=config.max_series_per_metric, const_labels=dict(config.const_labels),
            resource_to_labels=config.resource_to_telemetry_conversion.enabled,
            scope_info=not config.without_scope_info, openmetrics=config.enable_open_metrics,
            exp_bounds=tuple(config.exponential_histogram_buckets), clock=clock)
        self.server = MetricsServer(
            config.endpoint, self.accumulator.snapshot, lambda: self.accumulator.generation,
            openmetrics=config.enable_open_metrics,
            options=RenderOptions(config.send_timestamps, tuple(config.exponential_histogram_buckets)),
            logger=self.log, name=f"exporter {settings.id}")
        self._obs = settings.telemetry.exporter(settings.id)
        self._timer: asyncio.Task[None] | None = None
        self._started = False
        if config.sending_queue is not None and config.sending_queue.enabled:
            self.log.info("sending_queue has no effect on the prometheus exporter: points are folded into its "
                          "store synchronously.")

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=False)

    async def start(self, host: Host) -> None:
        """Bind the endpoint and start the expiry timer."""
        await self.server.start()
        self._started = True
        if self.config.metric_expiration > 0:
            self._timer = asyncio.create_task(self._expire_loop(), name=f"{self.settings.id} expiry")
        self.log.info("Serving Prometheus metrics.", extra={"endpoint": self.config.endpoint,
                                                            "port": self.server.port})

    async def _expire_loop(self) -> None:
        interval = expiry_interval(self.config.metric_expiration)
        while True:
            await asyncio.sleep(interval)
            try:
                self.accumulator.expire()
            except Exception:  # never let the timer die
                self.log.exception("Expiring series failed.")

    async def shutdown(self) -> None:
        """Stop the timer and the server (idempotent, safe without start)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        if self._started:
            self._started = False
            await self.server.stop()

    async def consume_metrics(self, md: Metrics) -> None:
        """Fold ``md`` into the store (never raises for bad points: they are counted)."""
        folded, dropped = self.accumulator.ingest(md)
        if folded:
            self._obs.sent(Signal.METRICS, folded)
        if dropped:
            self._obs.send_failed(Signal.METRICS, dropped)
