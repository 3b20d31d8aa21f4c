"""The jaeger exporter against a PostSpans double: delivery, retries, permanent errors, config."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.component import Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.exporters.jaeger.config import Config
from agent.exporters.jaeger.exporter import JaegerExporter
from agent.pdata import Traces, proto
from agent.testing import FakeClock, make_traces
from tests.helpers import running
from tests.unit.exporters.conftest import start_exporter
from tests.unit.exporters.jaeger.jaeger_double import JaegerCollectorDouble, tags

ROOT = Path(__file__).resolve().parents[4]
FAST_RETRY = {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": "1s"}


@pytest.fixture
async def collector() -> AsyncIterator[JaegerCollectorDouble]:
    async with running(JaegerCollectorDouble()) as double:
        yield double


def _config(port: int, **extra: Any) -> Config:
    raw = {"endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}, "sending_queue": {"enabled": False},
           "retry_on_failure": FAST_RETRY, **extra}
    return decode(Config, raw, "exporters.jaeger")


async def _exporter(make_settings: Callable[..., Settings], cfg: Config, clock: FakeClock | None = None,
                    ) -> JaegerExporter:
    return await start_exporter(JaegerExporter, make_settings("jaeger"), cfg, {Signal.TRACES}, seed=1, clock=clock)


def _multi_resource(n: int) -> Traces:
    req = proto.ExportTraceServiceRequest()
    for r in range(n):
        part = make_traces(3, batch_index=r, service=f"svc-{r}").proto.resource_spans[0]
        req.resource_spans.add().CopyFrom(part)
    return Traces(req)


def test_registered_and_defaults() -> None:
    f = lookup(Kind.EXPORTER, "jaeger")
    assert f.signals == frozenset({Signal.TRACES})
    cfg = decode(Config, {"endpoint": "jaeger-collector", "tls": {"insecure": True}}, "exporters.jaeger")
    assert cfg.timeout == 5.0 and cfg.compression == "" and cfg.sending_queue.queue_size == 1000
    from agent.exporters.otlp.grpc_client import GrpcClient
    assert GrpcClient(cfg, user_agent="t", default_port=14250).target == "jaeger-collector:14250"
    assert cfg.target(14250) == ("jaeger-collector:14250", True)
    assert _config(1).target(14250)[0] == "127.0.0.1:1"
    with pytest.raises(ConfigErrors, match=r"exporters.jaeger.endpoint: required"):
        decode(Config, {}, "exporters.jaeger")
    with pytest.raises(ConfigErrors, match=r"tls.insecure_skip_verify: not supported"):
        decode(Config, {"endpoint": "x:1", "tls": {"insecure_skip_verify": True}}, "exporters.jaeger")


async def test_spans_reach_the_collector(collector: JaegerCollectorDouble,
                                         make_settings: Callable[..., Settings]) -> None:
    exp = await _exporter(make_settings, _config(collector.port, headers={"X-Tenant": "t1"}))
    try:
        await exp.consume_traces(make_traces(50))
    finally:
        await exp.shutdown()
    spans = collector.spans
    assert len(spans) == 50
    assert collector.batches[0]["process"]["service_name"] == "test-service"
    assert sorted(s["operation_name"] for s in spans) == sorted(f"span-{i}" for i in range(50))
    assert tags(spans[0])["span.kind"] == "server"
    assert collector.metadata[0]["x-tenant"] == "t1"
    assert collector.metadata[0]["user-agent"].startswith("otel-sidecar/")
    t = exp.settings.telemetry
    assert t.value("otelcol_exporter_sent_spans_total", {"exporter": "jaeger"}) == 50


async def test_unavailable_is_retried(collector: JaegerCollectorDouble,
                                      make_settings: Callable[..., Settings]) -> None:
    collector.failures = [(grpc.StatusCode.UNAVAILABLE, "busy"), (grpc.StatusCode.UNAVAILABLE, "busy"), None]
    clock = FakeClock()
    exp = await _exporter(make_settings, _config(collector.port), clock)
    try:
        await exp.consume_traces(make_traces(5))
    finally:
        await exp.shutdown()
    assert collector.calls == 3
    assert len(collector.spans) == 5
    assert len(clock.sleeps) == 2 and all(0 < s <= 0.1 for s in clock.sleeps)


async def test_invalid_argument_is_not_retried_and_counted(collector: JaegerCollectorDouble,
                                                           make_settings: Callable[..., Settings]) -> None:
    collector.failures = [(grpc.StatusCode.INVALID_ARGUMENT, "bad span")]
    exp = await _exporter(make_settings, _config(collector.port))
    try:
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await exp.consume_traces(make_traces(7))
    finally:
        await exp.shutdown()
    assert collector.calls == 1
    assert exp.settings.telemetry.value("otelcol_exporter_send_failed_spans_total", {"exporter": "jaeger"}) == 7


async def test_retry_resumes_after_the_last_delivered_batch(collector: JaegerCollectorDouble,
                                                            make_settings: Callable[..., Settings]) -> None:
    # 3 resources -> 3 PostSpans calls; the second fails once: the first must not be sent twice.
    collector.failures = [None, (grpc.StatusCode.UNAVAILABLE, "blip"), None, None]
    exp = await _exporter(make_settings, _config(collector.port), FakeClock())
    try:
        await exp.consume_traces(_multi_resource(3))
    finally:
        await exp.shutdown()
    services = [b["process"]["service_name"] for b in collector.batches]
    assert services == ["svc-0", "svc-1", "svc-2"]
    assert collector.calls == 4


async def test_queued_export_and_shutdown_drain(collector: JaegerCollectorDouble,
                                                make_settings: Callable[..., Settings]) -> None:
    cfg = decode(Config, {"endpoint": f"127.0.0.1:{collector.port}", "tls": {"insecure": True}}, "exporters.jaeger")
    exp = await _exporter(make_settings, cfg)
    for i in range(5):
        await exp.consume_traces(make_traces(10, batch_index=i))
    await collector.wait_spans(50)
    await exp.shutdown()
    assert len(collector.spans) == 50


async def test_undecodable_batch_is_permanent(collector: JaegerCollectorDouble,
                                              make_settings: Callable[..., Settings]) -> None:
    exp = await _exporter(make_settings, _config(collector.port))
    try:
        with pytest.raises(Exception, match="cannot be decoded"):
            await exp.push(Signal.TRACES, Traces(raw=b"\x0a\xff\xff", count=1))
    finally:
        await exp.shutdown()
    assert collector.calls == 0


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (dev tool) not installed")
def test_generated_modules_are_up_to_date() -> None:
    script = ROOT / "agent" / "exporters" / "jaeger" / "proto" / "generate.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
