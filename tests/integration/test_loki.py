"""Logs to Loki, end to end: the real OpenTelemetry SDK (LoggingHandler + OTLP gRPC exporters) feeds a
running agent (otlp receiver -> redaction -> batch) that exports to Loki doubles (push API in protobuf
and JSON, and Loki's native OTLP endpoint through ``otlphttp``), a Jaeger api_v2 double and files.

Asserts labels, structured metadata with the active span's trace id, the line format, per-stream
order, a throttled push retried after Retry-After, a refused stream dropped and counted while the
other streams flow, and that a sentinel secret logged, put in span attributes and in a SQL statement
reaches none of Loki, Jaeger, the files or the self-metrics endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from tests.helpers import eventually, running
from tests.loki_double import LokiDouble

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1N3L-9d2f7c41"
N_INFO = 12
N_ERROR = 3


class JaegerDouble:
    """A Jaeger collector's ``PostSpans`` endpoint that keeps the raw request bytes."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server = grpc.aio.server()
        self.port = 0

    async def start(self) -> None:
        async def post_spans(raw: bytes, ctx: object) -> bytes:
            self.requests.append(raw)
            return b""

        handler = grpc.method_handlers_generic_handler(
            "jaeger.api_v2.CollectorService", {"PostSpans": grpc.unary_unary_rpc_method_handler(post_spans)})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(None)


def _config(tmp: Path, ports: dict[str, int], proto_url: str, json_url: str, otlp_url: str) -> list[str]:
    retry = "{initial_interval: 10ms, max_interval: 50ms, randomization_factor: 0, max_elapsed_time: 30s}"
    return [f"""yaml:
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
processors:
  redaction:
    allow_all_keys: true
    presets: {{passwords: true, bearer_tokens: true, jwt: true, api_keys: true, credit_cards: true,
               emails: true, sql_literals: true, url_credentials: true}}
  batch: {{timeout: 50ms}}
exporters:
  loki:
    endpoint: "{proto_url}"
    tenant_id: team-a
    sending_queue: {{num_consumers: 1}}
    retry_on_failure: {retry}
  loki/json:
    endpoint: "{json_url}"
    encoding: json
    line_format: logfmt
    retry_on_failure: {retry}
  otlphttp/loki:
    endpoint: "{otlp_url}"
    retry_on_failure: {retry}
  jaeger:
    endpoint: "127.0.0.1:{ports['jaeger']}"
    tls: {{insecure: true}}
    retry_on_failure: {retry}
  file/logs: {{path: "{tmp}/logs.jsonl", flush_interval: 50ms}}
  file/traces: {{path: "{tmp}/traces.jsonl", flush_interval: 50ms}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{ports['metrics']}"}}}}
  pipelines:
    logs:
      receivers: [otlp]
      processors: [redaction, batch]
      exporters: [loki, loki/json, otlphttp/loki, file/logs]
    traces:
      receivers: [otlp]
      processors: [redaction, batch]
      exporters: [jaeger, file/traces]
"""]


def _emit(endpoint: str) -> tuple[str, str]:
    """Log through the SDK's LoggingHandler inside an active span; return its (trace id, span id) hex."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "checkout", "service.namespace": "shop",
                                "k8s.namespace.name": "prod", "host.name": "node-1"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                                                          schedule_delay_millis=50))
    log_provider = LoggerProvider(resource=resource)
    log_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True),
                                                                  schedule_delay_millis=50))
    handler = LoggingHandler(level=logging.INFO, logger_provider=log_provider)
    logger = logging.getLogger(f"tests.loki.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    tracer = tracer_provider.get_tracer("tests.loki")
    try:
        with tracer.start_as_current_span("POST /login") as span:
            span.set_attribute("user.password", SENTINEL)
            span.set_attribute("db.statement", f"UPDATE users SET password = '{SENTINEL}' WHERE id = 7")
            span.set_attribute("http.route", "/login")
            ctx = span.get_span_context()
            for i in range(N_INFO):
                logger.info("step %d for bob", i, extra={"item_index": i})
            logger.info("login with password=%s", SENTINEL, extra={"auth.token": SENTINEL})
            for i in range(N_ERROR - 1):
                logger.error("failure %d", i)
            logger.error("card %s declined", "4111 1111 1111 1111")
        assert tracer_provider.force_flush(10_000)
        assert log_provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        log_provider.shutdown()
        tracer_provider.shutdown()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


@pytest.fixture
async def world(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[dict[str, Any]]:
    proto_loki, json_loki, otlp_loki, jaeger = LokiDouble(), LokiDouble(), LokiDouble(), JaegerDouble()
    for d in (proto_loki, json_loki, otlp_loki, jaeger):
        await d.start()
    # Loki throttles the first push, and refuses any request holding an error stream.
    proto_loki.script = [(429, {"Retry-After": "0.3"})]
    proto_loki.reject_stream = lambda labels: labels.get("level") == "error"
    ports = {"grpc": free_port(), "metrics": free_port(), "jaeger": jaeger.port}
    cfg = _config(tmp_path, ports, proto_loki.push_url, json_loki.push_url, otlp_loki.otlp_url)
    svc = Service(build(load(cfg, env={})), data_dir=str(tmp_path))
    await svc.start()
    try:
        yield {"svc": svc, "ports": ports, "proto": proto_loki, "json": json_loki, "otlp": otlp_loki,
               "jaeger": jaeger, "tmp": tmp_path}
    finally:
        await svc.shutdown()
        for d in (proto_loki, json_loki, otlp_loki, jaeger):
            await d.stop()


async def test_sdk_logs_reach_loki_with_labels_metadata_order_and_no_secret(world: dict[str, Any]) -> None:
    trace_id, span_id = await asyncio.to_thread(_emit, f"127.0.0.1:{world['ports']['grpc']}")
    proto_loki: LokiDouble = world["proto"]
    json_loki: LokiDouble = world["json"]
    otlp_loki: LokiDouble = world["otlp"]
    jaeger: JaegerDouble = world["jaeger"]
    svc: Service = world["svc"]
    total = N_INFO + 1 + N_ERROR

    await proto_loki.wait_entries(N_INFO + 1)
    await json_loki.wait_entries(total)
    await eventually(lambda: sum(len(sl.log_records) for r in otlp_loki.otlp_requests
                                 for rl in r.resource_logs for sl in rl.scope_logs) == total)
    await eventually(lambda: bool(jaeger.requests))

    # -- push API, protobuf: labels, metadata, json lines, order --------------------------------------
    (labels, entries), = proto_loki.streams().items()
    label_map = dict(labels)
    label_map.pop("service_instance_id", None)  # set by newer SDKs' Resource.create
    assert label_map == {"service_name": "checkout", "service_namespace": "shop", "k8s_namespace_name": "prod",
                         "level": "info"}  # host.name is no Loki default label
    assert proto_loki.pushes[0].tenant == "team-a"
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)
    bodies = [json.loads(e.line)["body"] for e in entries]
    assert bodies[:N_INFO] == [f"step {i} for bob" for i in range(N_INFO)]
    assert bodies[N_INFO] == "login with password=****"
    first = entries[0]
    assert first.metadata["trace_id"] == trace_id and first.metadata["span_id"] == span_id
    assert first.metadata["severity_text"] == "INFO" and first.metadata["severity_number"] == "9"
    assert json.loads(first.line)["attributes"]["item_index"] == 0
    assert json.loads(entries[N_INFO].line)["attributes"]["auth.token"] == "****"

    # -- the throttled push was retried after Retry-After; the error stream was refused, not retried -----
    statuses = [status for status, _ in proto_loki.answers]
    assert statuses[0] == 429 and 204 in statuses
    assert proto_loki.answer_times[1] - proto_loki.answer_times[0] >= 0.29  # Retry-After: 0.3 was honoured
    t = svc.telemetry
    loki = {"exporter": "loki"}
    await eventually(lambda: t.value("otelcol_exporter_loki_dropped_log_records_total",
                                     {**loki, "reason": "bad_request"}) == N_ERROR)
    assert t.value("otelcol_exporter_send_failed_log_records_total", loki) == N_ERROR
    assert t.value("otelcol_exporter_loki_responses_total", {**loki, "status_code": "429"}) == 1

    # -- push API, JSON + logfmt: both levels --------------------------------------------------------
    by_level = {dict(k)["level"]: es for k, es in json_loki.streams().items()}
    assert sorted(by_level) == ["error", "info"]
    assert len(by_level["error"]) == N_ERROR and len(by_level["info"]) == N_INFO + 1
    assert by_level["info"][0].line.startswith('msg="step 0 for bob" ') and " item_index=0" in by_level["info"][0].line
    assert by_level["error"][-1].line.startswith('msg="card **** declined"')
    assert by_level["error"][0].metadata["trace_id"] == trace_id

    # -- Loki native OTLP through otlphttp ------------------------------------------------------------
    rec = otlp_loki.otlp_requests[0].resource_logs[0].scope_logs[0].log_records[0]
    assert rec.trace_id.hex() == trace_id

    # -- the sentinel reached nothing -----------------------------------------------------------------
    async with httpx.AsyncClient() as client:
        metrics_text = (await client.get(f"http://127.0.0.1:{world['ports']['metrics']}/metrics")).text
    assert 'otelcol_exporter_loki_dropped_log_records_total{exporter="loki",reason="bad_request"}' in metrics_text
    assert "otelcol_processor_redaction_redacted_total" in metrics_text
    tmp: Path = world["tmp"]
    await eventually(lambda: (tmp / "traces.jsonl").exists() and (tmp / "logs.jsonl").exists()
                     and len((tmp / "logs.jsonl").read_text()) > 0)
    await eventually(lambda: "db.statement" in (tmp / "traces.jsonl").read_text())
    places = {
        "loki protobuf": repr(proto_loki.entries()),
        "loki json": repr(json_loki.entries()),
        "loki otlp": "".join(str(r) for r in otlp_loki.otlp_requests),
        "jaeger": repr(b"".join(jaeger.requests)),
        "file logs": (tmp / "logs.jsonl").read_text(),
        "file traces": (tmp / "traces.jsonl").read_text(),
        "self-metrics": metrics_text,
    }
    for where, text in places.items():
        assert SENTINEL not in text, f"secret leaked to {where}"
        assert "4111 1111 1111 1111" not in text, f"card number leaked to {where}"
    assert "UPDATE users SET password = ? WHERE id = ?" in places["file traces"]
    assert b"UPDATE users SET password = ? WHERE id = ?" in b"".join(jaeger.requests)


EXAMPLES = Path(__file__).resolve().parents[2] / "collector-config" / "examples"


@pytest.mark.parametrize("example", ["loki-push.yaml", "loki-otlp.yaml"])
async def test_example_configs_deliver_sdk_logs(example: str, free_port: Callable[[], int], tmp_path: Path) -> None:
    async with running(LokiDouble()) as loki:
        grpc_port = free_port()
        env = {"OTEL_SIDECAR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
               "OTEL_SIDECAR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
               "LOKI_PUSH_ENDPOINT": loki.push_url, "LOKI_OTLP_ENDPOINT": loki.otlp_url, "LOKI_TENANT": "acme"}
        sets = [f"extensions.health_check.endpoint=127.0.0.1:{free_port()}",
                f"service.telemetry.metrics.address=127.0.0.1:{free_port()}"]
        svc = Service(build(load([str(EXAMPLES / example)], sets, env=env)), data_dir=str(tmp_path))
        await svc.start()
        try:
            trace_id, _ = await asyncio.to_thread(_emit, f"127.0.0.1:{grpc_port}")
            total = N_INFO + 1 + N_ERROR
            if example == "loki-push.yaml":
                await loki.wait_entries(total)
                assert {p.tenant for p in loki.pushes} == {"acme"}
                texts = [e.line + repr(e.metadata) for _, e in loki.entries()]
                assert all(e.metadata.get("trace_id") == trace_id for _, e in loki.entries())
            else:
                await eventually(lambda: sum(len(sl.log_records) for r in loki.otlp_requests
                                             for rl in r.resource_logs for sl in rl.scope_logs) == total)
                texts = [str(r) for r in loki.otlp_requests]
            assert all(SENTINEL not in t for t in texts)
        finally:
            await svc.shutdown()
