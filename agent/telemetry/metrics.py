"""The sidecar's own metrics, with the collector's names and labels.

Counters are exposed with the Prometheus ``_total`` suffix
(``otelcol_receiver_accepted_spans_total``), as the collector does since it
moved to the OpenTelemetry Go SDK. Each :class:`SelfMetrics` owns a private
registry, so tests and several services in one process never share counts.

Hot paths hold pre-bound children (:class:`ReceiverObs`, :class:`ExporterObs`,
:class:`ProcessorObs`): one ``inc`` per request, never per item.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import prometheus_client
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from agent.component import ComponentID, Signal

__all__ = ["ExporterObs", "ProcessorObs", "ReceiverObs", "SelfMetrics"]

# The collector exposes no `_created` series; neither do we.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_SIGNALS = tuple(Signal)


def _per_signal(registry: CollectorRegistry, fmt: str, doc: str, labels: Iterable[str]) -> dict[Signal, Counter]:
    return {
        s: Counter(fmt.format(item=s.item_name), doc.format(item=s.item_name.replace("_", " ")),
                   list(labels), registry=registry)
        for s in _SIGNALS
    }


class _ProcessCollector(Collector):
    def __init__(self) -> None:
        self._proc = psutil.Process(os.getpid())
        self._start = time.time()

    def collect(self) -> Iterable[Metric]:
        with self._proc.oneshot():
            cpu = self._proc.cpu_times()
            rss = self._proc.memory_info().rss
        yield GaugeMetricFamily("otelcol_process_uptime", "Uptime of the process in seconds",
                                value=time.time() - self._start)
        yield GaugeMetricFamily("otelcol_process_memory_rss", "Total physical memory (resident set size) in bytes",
                                value=rss)
        yield GaugeMetricFamily("otelcol_process_cpu_seconds", "Total CPU user and system time in seconds",
                                value=cpu.user + cpu.system)


class ReceiverObs:
    """Counters of one receiver on one transport."""

    __slots__ = ("_accepted", "_failed", "_refused", "_requests")

    def __init__(self, m: SelfMetrics, rid: ComponentID, transport: str) -> None:
        r, t = str(rid), transport
        self._accepted = {s: m.receiver_accepted[s].labels(r, t) for s in _SIGNALS}
        self._refused = {s: m.receiver_refused[s].labels(r, t) for s in _SIGNALS}
        self._failed = {s: m.receiver_failed[s].labels(r, t) for s in _SIGNALS}
        self._requests = {
            (s, o): m.receiver_requests.labels(r, t, s.value, o)
            for s in _SIGNALS for o in ("success", "refused", "failure")
        }

    def accepted(self, signal: Signal, n: int) -> None:
        self._accepted[signal].inc(n)
        self._requests[(signal, "success")].inc()

    def refused(self, signal: Signal, n: int) -> None:
        """Data the pipeline could not take (the client may retry)."""
        self._refused[signal].inc(n)
        self._requests[(signal, "refused")].inc()

    def failed(self, signal: Signal, n: int, *, count_request: bool = True) -> None:
        """Data rejected as bad (decode failure, invalid content). ``count_request``:
        False when the request itself was accepted (points dropped in a partial success)."""
        self._failed[signal].inc(n)
        if count_request:
            self._requests[(signal, "failure")].inc()


class ExporterObs:
    """Counters and gauges of one exporter."""

    __slots__ = ("_enqueue_failed", "_failed", "_sent", "id")

    def __init__(self, m: SelfMetrics, eid: ComponentID) -> None:
        e = str(eid)
        self.id = e
        self._sent = {s: m.exporter_sent[s].labels(e) for s in _SIGNALS}
        self._failed = {s: m.exporter_send_failed[s].labels(e) for s in _SIGNALS}
        self._enqueue_failed = {s: m.exporter_enqueue_failed[s].labels(e) for s in _SIGNALS}

    def sent(self, signal: Signal, n: int) -> None:
        self._sent[signal].inc(n)

    def send_failed(self, signal: Signal, n: int) -> None:
        """Items dropped after a permanent error, exhausted retries or shutdown."""
        self._failed[signal].inc(n)

    def enqueue_failed(self, signal: Signal, n: int) -> None:
        self._enqueue_failed[signal].inc(n)


class ProcessorObs:
    """Counters of one processor in one pipeline."""

    __slots__ = ("_dropped", "_incoming", "_outgoing", "_refused")

    def __init__(self, m: SelfMetrics, pid: ComponentID, pipeline: str) -> None:
        p = str(pid)
        self._incoming = {s: m.processor_incoming.labels(p, pipeline, s.value) for s in _SIGNALS}
        self._outgoing = {s: m.processor_outgoing.labels(p, pipeline, s.value) for s in _SIGNALS}
        self._dropped = {s: m.processor_dropped[s].labels(p) for s in _SIGNALS}
        self._refused = {s: m.processor_refused[s].labels(p) for s in _SIGNALS}

    def incoming(self, signal: Signal, n: int) -> None:
        self._incoming[signal].inc(n)

    def outgoing(self, signal: Signal, n: int) -> None:
        self._outgoing[signal].inc(n)

    def dropped(self, signal: Signal, n: int) -> None:
        self._dropped[signal].inc(n)

    def refused(self, signal: Signal, n: int) -> None:
        self._refused[signal].inc(n)


class SelfMetrics:
    """All ``otelcol_*`` families on a private registry."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        reg = self.registry = CollectorRegistry(auto_describe=False)
        rl = ("receiver", "transport")
        self.receiver_accepted = _per_signal(
            reg, "otelcol_receiver_accepted_{item}", "Number of {item} successfully pushed into the pipeline.", rl)
        self.receiver_refused = _per_signal(
            reg, "otelcol_receiver_refused_{item}", "Number of {item} that could not be pushed into the pipeline.", rl)
        self.receiver_failed = _per_signal(
            reg, "otelcol_receiver_failed_{item}", "Number of {item} rejected as invalid by the receiver.", rl)
        self.receiver_requests = Counter(
            "otelcol_receiver_requests", "Number of export requests by outcome.",
            ["receiver", "transport", "otel_signal", "outcome"], registry=reg)
        el = ("exporter",)
        self.exporter_sent = _per_signal(
            reg, "otelcol_exporter_sent_{item}", "Number of {item} successfully sent to destination.", el)
        self.exporter_send_failed = _per_signal(
            reg, "otelcol_exporter_send_failed_{item}",
            "Number of {item} in failed attempts to send to destination.", el)
        self.exporter_enqueue_failed = _per_signal(
            reg, "otelcol_exporter_enqueue_failed_{item}",
            "Number of {item} failed to be added to the sending queue.", el)
        self.exporter_queue_size = Gauge(
            "otelcol_exporter_queue_size", "Current size of the retry queue (in the queue's sizer unit).",
            ["exporter", "data_type"], registry=reg)
        self.exporter_queue_capacity = Gauge(
            "otelcol_exporter_queue_capacity", "Fixed capacity of the retry queue (in the queue's sizer unit).",
            ["exporter", "data_type"], registry=reg)
        self.exporter_in_flight = Gauge(
            "otelcol_exporter_in_flight_requests", "Number of requests being sent right now.",
            ["exporter"], registry=reg)
        pl = ("processor", "pipeline", "otel_signal")
        self.processor_incoming = Counter(
            "otelcol_processor_incoming_items", "Number of items passed to the processor.", pl, registry=reg)
        self.processor_outgoing = Counter(
            "otelcol_processor_outgoing_items", "Number of items emitted from the processor.", pl, registry=reg)
        self.processor_dropped = _per_signal(
            reg, "otelcol_processor_dropped_{item}", "Number of {item} dropped by the processor.", ("processor",))
        self.processor_refused = _per_signal(
            reg, "otelcol_processor_refused_{item}", "Number of {item} refused by the processor (retryable).",
            ("processor",))
        self.batch_send_size = Histogram(
            "otelcol_processor_batch_batch_send_size", "Number of items in the batch that was sent.",
            ["processor"], registry=reg,
            buckets=(10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000,
                     9000, 10000, 20000, 30000, 50000, 100000))
        self.batch_timeout_trigger = Counter(
            "otelcol_processor_batch_timeout_trigger_send", "Number of times the batch was sent due to a timeout.",
            ["processor"], registry=reg)
        self.batch_size_trigger = Counter(
            "otelcol_processor_batch_batch_size_trigger_send",
            "Number of times the batch was sent due to a size trigger.", ["processor"], registry=reg)
        if process_metrics:
            reg.register(_ProcessCollector())
        self._extra: dict[str, Counter | Gauge | Histogram] = {}

    # Component-specific families (e.g. the prometheus exporter's refused series).
    def counter(self, name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
        fam = self._extra.get(name)
        if fam is None:
            fam = self._extra[name] = Counter(name, doc, list(labels), registry=self.registry)
        assert isinstance(fam, Counter)
        return fam

    def gauge(self, name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
        fam = self._extra.get(name)
        if fam is None:
            fam = self._extra[name] = Gauge(name, doc, list(labels), registry=self.registry)
        assert isinstance(fam, Gauge)
        return fam

    def receiver(self, rid: ComponentID, transport: str) -> ReceiverObs:
        return ReceiverObs(self, rid, transport)

    def exporter(self, eid: ComponentID) -> ExporterObs:
        return ExporterObs(self, eid)

    def processor(self, pid: ComponentID, pipeline: str) -> ProcessorObs:
        return ProcessorObs(self, pid, pipeline)

    def queue_gauges(self, eid: ComponentID, data_type: str, size: Callable[[], float], capacity: float) -> None:
        self.exporter_queue_size.labels(str(eid), data_type).set_function(size)
        self.exporter_queue_capacity.labels(str(eid), data_type).set(capacity)

    def render(self) -> bytes:
        """Prometheus text exposition of every family."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0 when absent); used by tests and the CLI."""
        v = self.registry.get_sample_value(name, labels or {})
        return float(v) if v is not None else 0.0
