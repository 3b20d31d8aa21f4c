"""Traces to Jaeger, end to end through a running service.

* The real OpenTelemetry SDK exports spans over OTLP/gRPC to the sidecar's
  ``otlp`` receiver; the ``jaeger`` exporter converts them and calls
  ``PostSpans`` on a Jaeger collector double, which decodes the requests with
  its own hand-written wire reader (tests/unit/exporters/jaeger/jaeger_double.py).
* With ``tail_sampling`` in the pipeline, only error traces reach Jaeger.
* The ``otlp`` exporter (the path to Jaeger v2 and to a collector gateway)
  forwards a client's request bytes unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from tests.helpers import eventually, running
from tests.unit.exporters.jaeger.jaeger_double import JaegerCollectorDouble, tags
from tests.unit.exporters.otlp.otlp_doubles import GrpcOTLPDouble, overlong

pytestmark = pytest.mark.integration

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
async def jaeger() -> AsyncIterator[JaegerCollectorDouble]:
    async with running(JaegerCollectorDouble()) as double:
        yield double


async def _service(tmp_path: Path, port: int, yaml: str) -> Service:
    """A started service whose ``otlp`` receiver takes gRPC on ``port``; ``yaml`` is the rest of its config."""
    receivers = f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}"""
    svc = Service(build(load([f"yaml:{receivers}{yaml}"], env={})), data_dir=str(tmp_path))
    await svc.start()
    return svc


def _send_sdk_spans(endpoint: str) -> None:
    """A small trace tree with an error, an event, a link and typed attributes (runs in a thread)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "test"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                                                   schedule_delay_millis=50))
    tracer = provider.get_tracer("shop.tracer", "2.0.1")
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/checkout/ünïcode")
        root.set_attribute("cart.items", 3)
        root.set_attribute("cart.tags", ["a", "b"])
        root.set_attribute("cart.total", 12.5)
        root.set_attribute("vip", True)
        root.add_event("payment.started", {"provider": "acme"})
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT,
                                          links=[Link(root.get_span_context())]) as child:
            child.set_status(Status(StatusCode.ERROR, "card declined"))
    for i in range(20):
        with tracer.start_as_current_span(f"healthy-{i}"):
            pass
    assert provider.force_flush(10_000)
    provider.shutdown()


async def test_sdk_spans_reach_jaeger_converted(jaeger: JaegerCollectorDouble, tmp_path: Path,
                                                free_port: Callable[[], int]) -> None:
    port = free_port()
    svc = await _service(tmp_path, port, f"""
processors:
  batch: {{timeout: 50ms}}
exporters:
  jaeger:
    endpoint: "127.0.0.1:{jaeger.port}"
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 10ms, max_interval: 50ms, max_elapsed_time: 5s}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [jaeger]}}
""")
    try:
        await asyncio.to_thread(_send_sdk_spans, f"127.0.0.1:{port}")
        await jaeger.wait_spans(22)
    finally:
        await svc.shutdown()
    spans = {s["operation_name"]: s for s in jaeger.spans}
    assert len(spans) == 22
    process = jaeger.batches[0]["process"]
    assert process["service_name"] == "shop"
    assert dict((k, v) for k, _t, v in process["tags"])["deployment.environment"] == "test"
    root, child = spans["checkout"], spans["charge"]
    assert len(root["trace_id"]) == 16 and root["trace_id"] == child["trace_id"]
    assert child["references"][0] == {"trace_id": root["trace_id"], "span_id": root["span_id"],
                                      "ref_type": "CHILD_OF"}
    assert child["references"][1]["ref_type"] == "FOLLOWS_FROM"
    rt, ct = tags(root), tags(child)
    assert rt["http.route"] == "/checkout/ünïcode"
    assert rt["cart.items"] == 3 and rt["cart.total"] == 12.5 and rt["vip"] is True
    assert rt["cart.tags"] == '["a","b"]'
    assert rt["span.kind"] == "server" and rt["otel.scope.name"] == "shop.tracer"
    assert rt["otel.scope.version"] == "2.0.1" and rt["otel.library.name"] == "shop.tracer"
    assert ct["span.kind"] == "client" and ct["error"] is True
    assert ct["otel.status_code"] == "ERROR" and ct["otel.status_description"] == "card declined"
    assert root["logs"][0]["fields"][:2] == [("event", "STRING", "payment.started"),
                                            ("provider", "STRING", "acme")]
    assert root["duration"] > (0, 0)
    t = svc.telemetry
    await eventually(lambda: t.value("otelcol_exporter_sent_spans_total", {"exporter": "jaeger"}) == 22)


async def test_tail_sampling_keeps_only_error_traces(jaeger: JaegerCollectorDouble, tmp_path: Path,
                                                     free_port: Callable[[], int]) -> None:
    port = free_port()
    svc = await _service(tmp_path, port, f"""
processors:
  tail_sampling:
    decision_wait: 300ms
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
exporters:
  jaeger: {{endpoint: "127.0.0.1:{jaeger.port}", tls: {{insecure: true}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [jaeger]}}
""")
    try:
        await asyncio.to_thread(_send_sdk_spans, f"127.0.0.1:{port}")
        await jaeger.wait_spans(2)
        await asyncio.sleep(0.6)  # every trace has been decided by now
    finally:
        await svc.shutdown()
    assert sorted(s["operation_name"] for s in jaeger.spans) == ["charge", "checkout"]


async def test_otlp_forwarding_keeps_the_client_bytes(tmp_path: Path, free_port: Callable[[], int]) -> None:
    async with running(GrpcOTLPDouble()) as backend:
        port = free_port()
        svc = await _service(tmp_path, port, f"""
exporters:
  otlp_grpc:
    endpoint: "127.0.0.1:{backend.port}"
    tls: {{insecure: true}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp_grpc]}}
""")
        from agent.testing import make_traces

        body = overlong(make_traces(25).proto.resource_spans[0].SerializeToString())  # re-encoding would change it
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary(TRACES_METHOD, request_serializer=None, response_deserializer=None)
                await call(body, timeout=10)
            await backend.wait(1)
        finally:
            await svc.shutdown()
    assert backend.received == [("traces", body)]
