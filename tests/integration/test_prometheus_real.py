"""A real Prometheus scrapes the sidecar (and receives its remote write); PromQL sees exactly what the SDK sent.

The real OpenTelemetry SDK exports, over several export cycles, counters,
up-down counters, histograms, an observable gauge and an exponential
histogram with cumulative temporality, plus delta-temporality counters,
up-down counters and histograms, over OTLP/gRPC into a running ``Service``
(otlp receiver -> prometheus exporters + prometheusremotewrite).

* Prometheus A (classic) scrapes the ``prometheus/text`` exporter (text 0.0.4)
  and the ``prometheus/om`` exporter (OpenMetrics), every second.
* Prometheus B runs with ``--enable-feature=native-histograms`` (so it scrapes
  ``prometheus/native`` in protobuf) and ``--web.enable-remote-write-receiver``
  (the remote-write exporter writes into it, with ``external_labels``).

Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from tests import prom
from tests.prom import PromServer

pytestmark = pytest.mark.integration

if not prom.available():  # pragma: no cover - CI installs it
    pytest.skip(f"{prom.PROMETHEUS} is not installed (Debian package 'prometheus')", allow_module_level=True)

query = prom.aquery
eventually = prom.aeventually
_values = prom.values
_only = prom.only

CYCLES = 3
HIST_VALUES = [0.05, 0.3, 0.3, 0.3, 0.7]  # per cycle; median over all cycles lies in (0.1, 0.5]: 0.3


def drive_sdk(endpoint: str) -> None:
    """Several export cycles of every instrument kind (cumulative and delta); runs in a thread."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import (
        ExplicitBucketHistogramAggregation,
        ExponentialBucketHistogramAggregation,
        View,
    )
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": "it-app", "service.instance.id": "it-1", "host.name": "it-host"})
    bounds = [0.1, 0.5, 1.0, 5.0]
    views = [View(instrument_name="it.duration", aggregation=ExplicitBucketHistogramAggregation(bounds)),
             View(instrument_name="it.delta.duration", aggregation=ExplicitBucketHistogramAggregation(bounds)),
             View(instrument_name="it.exp.duration", aggregation=ExponentialBucketHistogramAggregation())]
    delta = AggregationTemporality.DELTA
    readers = [
        PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True),
                                      export_interval_millis=3_600_000),
        PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True, preferred_temporality={
            Counter: delta, Histogram: delta, UpDownCounter: delta}), export_interval_millis=3_600_000),
    ]
    cumulative = MeterProvider(resource=resource, metric_readers=[readers[0]], views=views)
    deltas = MeterProvider(resource=resource, metric_readers=[readers[1]], views=views)
    m = cumulative.get_meter("it.cumulative", "1.2.3")
    d = deltas.get_meter("it.delta")
    requests = m.create_counter("it.requests", unit="{request}", description="Requests served")
    inflight = m.create_up_down_counter("it.inflight")
    duration = m.create_histogram("it.duration", unit="s")
    exp_duration = m.create_histogram("it.exp.duration", unit="s")

    def temperature(_: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "lab"})]

    m.create_observable_gauge("it.temperature", [temperature], unit="Cel")
    d_requests = d.create_counter("it.delta.requests")
    d_queue = d.create_up_down_counter("it.delta.queue")
    d_duration = d.create_histogram("it.delta.duration", unit="s")
    for cycle in range(CYCLES):
        requests.add(1, {"route": "a"})
        requests.add(2, {"route": "b"})
        inflight.add([5, -2, 1][cycle])
        d_queue.add([5, -2, 1][cycle])
        if cycle != 1:  # cycle 1 records nothing: the next delta window starts after a gap
            d_requests.add([10, 0, 5][cycle], {"route": "a"})
        for v in HIST_VALUES:
            duration.record(v)
            d_duration.record(v)
            exp_duration.record(v)
        assert cumulative.force_flush(10_000)
        assert deltas.force_flush(10_000)
    cumulative.shutdown()
    deltas.shutdown()


@pytest.fixture
async def stack(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[dict[str, Any]]:
    ports = {k: free_port() for k in ("grpc", "text", "om", "native", "prom_a", "prom_b")}
    config = f"""yaml:
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
exporters:
  prometheus/text: {{endpoint: "127.0.0.1:{ports['text']}"}}
  prometheus/om: {{endpoint: "127.0.0.1:{ports['om']}", enable_open_metrics: true}}
  prometheus/native: {{endpoint: "127.0.0.1:{ports['native']}"}}
  prometheusremotewrite:
    endpoint: "http://127.0.0.1:{ports['prom_b']}/api/v1/write"
    external_labels: {{via: remote_write}}
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus/text, prometheus/om, prometheus/native, prometheusremotewrite]
"""
    svc = Service(build(load([config], env={})), data_dir=str(tmp_path))
    prom_a, prom_b = await asyncio.gather(
        asyncio.to_thread(prom.start, tmp_path, "a", ports["prom_a"], [
            prom.static_scrape("text", f"127.0.0.1:{ports['text']}", {"exporter": "text"}),
            prom.static_scrape("om", f"127.0.0.1:{ports['om']}", {"exporter": "om"})]),
        asyncio.to_thread(prom.start, tmp_path, "b", ports["prom_b"], [
            prom.static_scrape("native", f"127.0.0.1:{ports['native']}", {"exporter": "native"})],
            ["--enable-feature=native-histograms", "--web.enable-remote-write-receiver"]),
        return_exceptions=True)
    started = [p for p in (prom_a, prom_b) if isinstance(p, PromServer)]
    failed = [p for p in (prom_a, prom_b) if isinstance(p, BaseException)]
    if failed:
        await asyncio.gather(*(asyncio.to_thread(prom.stop, p) for p in started))
        raise failed[0]
    assert isinstance(prom_a, PromServer) and isinstance(prom_b, PromServer)
    try:
        await svc.start()
        try:
            yield {"a": prom_a, "b": prom_b, "grpc": f"127.0.0.1:{ports['grpc']}", "service": svc}
        finally:
            await svc.shutdown()
    finally:
        await asyncio.gather(asyncio.to_thread(prom.stop, prom_a), asyncio.to_thread(prom.stop, prom_b))


EXPECTED_REQUESTS = {"a": 1.0 * CYCLES, "b": 2.0 * CYCLES}


async def check_source(server: PromServer, sel: str, *, native: bool) -> None:
    """The same PromQL answers for every way the data reached Prometheus (``sel`` picks the source)."""
    res = await eventually(server, f"it_requests_total{{{sel}}}", lambda r: _values(r, "route") == EXPECTED_REQUESTS)
    assert all(labels["job"] == "it-app" and labels["instance"] == "it-1" for labels, _ in res)
    assert all(labels["otel_scope_name"] == "it.cumulative" and labels["otel_scope_version"] == "1.2.3"
               for labels, _ in res)
    await eventually(server, f"it_inflight{{{sel}}}", lambda r: _only(r) == 4.0)
    await eventually(server, f"it_temperature_celsius{{{sel}}}", lambda r: _values(r, "room") == {"lab": 21.5})
    # Delta temporality accumulated into cumulative series (with a skipped window in between).
    await eventually(server, f"it_delta_requests_total{{{sel}}}", lambda r: _values(r, "route") == {"a": 15.0})
    # A delta up-down counter becomes a running gauge.
    await eventually(server, f"it_delta_queue{{{sel}}}", lambda r: _only(r) == 4.0)
    n = len(HIST_VALUES) * CYCLES
    for name in ("it_duration_seconds", "it_delta_duration_seconds"):
        await eventually(server, f"{name}_count{{{sel}}}", lambda r: _only(r) == n)
        await eventually(server, f"{name}_sum{{{sel}}}", lambda r: math.isclose(_only(r), sum(HIST_VALUES) * CYCLES))
        await eventually(server, f"histogram_quantile(0.5, sum by (le) ({name}_bucket{{{sel}}}))",
                         lambda r: math.isclose(_only(r), 0.3))
    # The exponential histogram: a native histogram over protobuf and remote write, classic buckets otherwise.
    if native:
        await eventually(server, f"histogram_count(it_exp_duration_seconds{{{sel}}})", lambda r: _only(r) == n)
        await eventually(server, f"histogram_quantile(0.5, it_exp_duration_seconds{{{sel}}})",
                         lambda r: math.isclose(_only(r), 0.3, rel_tol=0.02))
    else:
        await eventually(server, f"histogram_quantile(0.5, sum by (le) (it_exp_duration_seconds_bucket{{{sel}}}))",
                         lambda r: 0.25 < _only(r) <= 0.5)
    # target_info joins on job and instance.
    joined = await eventually(
        server, f"it_requests_total{{{sel}}} * on (job, instance, exporter) group_left (host_name) "
                f"target_info{{{sel}}}", lambda r: len(r) == 2)
    assert {labels["host_name"] for labels, _ in joined} == {"it-host"}
    assert _values(joined, "route") == EXPECTED_REQUESTS


async def test_prometheus_scrapes_exact_sdk_values(stack: dict[str, Any]) -> None:
    await asyncio.to_thread(drive_sdk, stack["grpc"])
    a: PromServer = stack["a"]
    b: PromServer = stack["b"]
    await check_source(a, 'exporter="text"', native=False)  # text 0.0.4
    await check_source(a, 'exporter="om"', native=False)  # OpenMetrics
    # Proof that OpenMetrics was negotiated: Prometheus 2.x stores its _created samples as series.
    await eventually(a, 'it_requests_created{exporter="om"}', lambda r: len(r) == 2)
    assert await query(a, 'it_requests_created{exporter="text"}') == []
    await check_source(b, 'exporter="native"', native=True)  # protobuf with native histograms
    await check_source(b, 'via="remote_write"', native=True)  # remote write, with the external label


def test_prometheus_binary_is_the_one_we_expect() -> None:
    assert shutil.which("promtool") or os.path.exists("/usr/bin/promtool")
