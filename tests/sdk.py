"""Drive the real OpenTelemetry Python SDK exporters (synchronous; call from a thread)."""

from __future__ import annotations

import logging
from typing import Literal

from opentelemetry.sdk.resources import Resource

Protocol = Literal["grpc", "http"]


def _resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "service.instance.id": "test-1"})


def send_spans(protocol: Protocol, endpoint: str, n: int, service: str = "sdk-test", attrs: dict[str, str] | None = None) -> None:
    """Export ``n`` spans; ``endpoint`` is host:port (gRPC) or a base URL (HTTP)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as G

        exporter = G(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H

        exporter = H(endpoint=f"{endpoint}/v1/traces")
    provider = TracerProvider(resource=_resource(service))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=256, schedule_delay_millis=50))
    tracer = provider.get_tracer("tests.sdk")
    for i in range(n):
        with tracer.start_as_current_span(f"op-{i}") as span:
            span.set_attribute("item_index", i)
            for k, v in (attrs or {}).items():
                span.set_attribute(k, v)
    assert provider.force_flush(10_000)
    provider.shutdown()


def send_metrics(protocol: Protocol, endpoint: str, points: int, service: str = "sdk-test") -> None:
    """Export one counter with ``points`` attribute sets (one data point each)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as G

        exporter = G(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as H

        exporter = H(endpoint=f"{endpoint}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource(service), metric_readers=[reader])
    counter = provider.get_meter("tests.sdk").create_counter("test.requests", unit="{request}")
    for i in range(points):
        counter.add(i + 1, {"item_index": i})
    provider.shutdown()  # one final collection and export


def send_logs(protocol: Protocol, endpoint: str, n: int, service: str = "sdk-test") -> None:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as G

        exporter = G(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as H

        exporter = H(endpoint=f"{endpoint}/v1/logs")
    provider = LoggerProvider(resource=_resource(service))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logger = logging.getLogger(f"tests.sdk.{protocol}.{id(provider)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for i in range(n):
            logger.info("record %d", i, extra={"item_index": i})
        assert provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
