"""The ``otlphttp`` exporter against a loopback OTLP/HTTP double."""

from __future__ import annotations

import email.utils
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.component import Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigError, ConfigErrors, ConsumerError, PermanentError
from agent.exporters.otlphttp.config import Config
from agent.exporters.otlphttp.exporter import OTLPHttpExporter, parse_retry_after
from agent.pdata import Logs, Metrics, Traces, proto
from agent.testing import FakeClock, make_logs, make_metrics, make_traces
from tests.helpers import running
from tests.unit.exporters.conftest import start_exporter
from tests.unit.exporters.otlp.otlp_doubles import HttpOTLPDouble, HttpReply, overlong

FAST_RETRY = {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": "10s"}


@pytest.fixture
async def backend() -> AsyncIterator[HttpOTLPDouble]:
    async with running(HttpOTLPDouble()) as double:
        yield double


def _cfg(**raw: Any) -> Config:
    base: dict[str, Any] = {"sending_queue": {"enabled": False}, "retry_on_failure": FAST_RETRY}
    return decode(Config, {**base, **raw}, "exporters.otlphttp")


async def _start(make_settings: Callable[..., Settings], cfg: Config, clock: FakeClock | None = None,
                 signals: frozenset[Signal] = frozenset(Signal)) -> OTLPHttpExporter:
    return await start_exporter(OTLPHttpExporter, make_settings("otlphttp"), cfg, signals, seed=5, clock=clock)


def _value(exp: OTLPHttpExporter, name: str) -> float:
    return exp.settings.telemetry.value(name, {"exporter": "otlphttp"})


def test_factory_aliases_defaults_and_urls() -> None:
    assert lookup(Kind.EXPORTER, "otlp_http") is lookup(Kind.EXPORTER, "otlphttp")
    cfg = decode(Config, {"endpoint": "http://loki:3100/otlp"}, "e")
    assert (cfg.timeout, cfg.compression, cfg.encoding) == (30.0, "gzip", "proto")
    assert cfg.url_for(Signal.LOGS) == "http://loki:3100/otlp/v1/logs"
    assert decode(Config, {"endpoint": "http://c:4318/"}, "e").url_for(Signal.TRACES) == "http://c:4318/v1/traces"
    own = decode(Config, {"endpoint": "http://c:4318", "traces_endpoint": "https://t.example/custom"}, "e")
    assert own.url_for(Signal.TRACES) == "https://t.example/custom"
    assert own.url_for(Signal.METRICS) == "http://c:4318/v1/metrics"
    only = decode(Config, {"logs_endpoint": "http://l:1/push"}, "e")
    assert only.url_for(Signal.TRACES) == ""


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "at least one of endpoint"),
    ({"endpoint": "loki:3100"}, "endpoint: invalid URL"),
    ({"endpoint": "http://x:1", "encoding": "xml"}, "encoding: invalid value"),
    ({"endpoint": "http://x:1", "compression": "br"}, "compression: invalid value"),
    ({"endpoint": "http://x:1", "compression_params": {"level": 11}}, "compression_params.level"),
    ({"endpoint": "http://x:1", "headers": {"bad name": "v"}}, "headers.bad name"),
])
def test_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors, match=message):
        decode(Config, raw, "exporters.otlphttp")


def test_a_signal_without_url_fails_creation(make_settings: Callable[..., Settings]) -> None:
    cfg = decode(Config, {"logs_endpoint": "http://l:1/push"}, "e")
    with pytest.raises(ConfigError, match="no URL for traces"):
        OTLPHttpExporter(make_settings("otlphttp"), cfg, {Signal.TRACES})
    OTLPHttpExporter(make_settings("otlphttp/ok"), cfg, {Signal.LOGS})


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=lambda: 1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(5, usegmt=True), now=lambda: 100.0) == 0.0


async def test_original_bytes_are_posted_per_signal(backend: HttpOTLPDouble,
                                                    make_settings: Callable[..., Settings]) -> None:
    exp = await _start(make_settings, _cfg(endpoint=backend.base, compression="none",
                                           headers={"X-Scope-OrgID": "t1"}))
    raws = {
        "traces": overlong(make_traces(3).proto.resource_spans[0].SerializeToString()),
        "metrics": overlong(make_metrics(2).proto.resource_metrics[0].SerializeToString()),
        "logs": overlong(make_logs(4).proto.resource_logs[0].SerializeToString()),
    }
    try:
        await exp.consume_traces(Traces.parse(raws["traces"]))
        await exp.consume_metrics(Metrics.parse(raws["metrics"]))
        await exp.consume_logs(Logs.parse(raws["logs"]))
    finally:
        await exp.shutdown()
    assert [(p, wire) for p, _h, wire, _b in backend.received] == [
        ("/v1/traces", raws["traces"]), ("/v1/metrics", raws["metrics"]), ("/v1/logs", raws["logs"])]
    headers = backend.received[0][1]
    assert headers["Content-Type"] == "application/x-protobuf"
    assert "Content-Encoding" not in headers
    assert headers["X-Scope-OrgID"] == "t1"
    assert headers["User-Agent"].startswith("otel-sidecar/")


async def test_gzip_and_deflate_bodies(backend: HttpOTLPDouble, make_settings: Callable[..., Settings]) -> None:
    raw = make_traces(20).to_bytes()
    for compression, header in (("gzip", "gzip"), ("deflate", "deflate"), ("zlib", "deflate")):
        exp = await _start(make_settings, _cfg(endpoint=backend.base, compression=compression))
        try:
            await exp.consume_traces(Traces.parse(raw))
        finally:
            await exp.shutdown()
        _path, headers, wire, body = backend.received[-1]
        assert headers["Content-Encoding"] == header
        assert body == raw and wire != raw
    assert gzip.decompress(backend.received[0][2]) == raw


async def test_json_encoding(backend: HttpOTLPDouble, make_settings: Callable[..., Settings]) -> None:
    exp = await _start(make_settings, _cfg(endpoint=backend.base, encoding="json", compression="none"))
    try:
        await exp.consume_traces(make_traces(2))
    finally:
        await exp.shutdown()
    _path, headers, _wire, body = backend.received[0]
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == (1).to_bytes(16, "big").hex() and span["name"] == "span-0"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retryable_statuses_honour_retry_after(backend: HttpOTLPDouble, make_settings: Callable[..., Settings],
                                                     status: int) -> None:
    backend.script = [HttpReply(status, headers={"Retry-After": "3"}), HttpReply(status), None]
    clock = FakeClock()
    exp = await _start(make_settings, _cfg(endpoint=backend.base), clock)
    try:
        await exp.consume_traces(make_traces(4))
    finally:
        await exp.shutdown()
    assert backend.calls == 3
    assert clock.sleeps[0] == 3.0 and clock.sleeps[1] < 0.1  # Retry-After, then plain backoff
    assert _value(exp, "otelcol_exporter_sent_spans_total") == 4
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500, 501])
async def test_other_statuses_are_permanent_and_counted(backend: HttpOTLPDouble,
                                                        make_settings: Callable[..., Settings], status: int) -> None:
    st = proto.RpcStatus()
    st.code = 3
    st.message = "invalid span"
    backend.script = [HttpReply(status, body=st.SerializeToString())]
    exp = await _start(make_settings, _cfg(endpoint=backend.base))
    try:
        with pytest.raises(PermanentError, match=f"HTTP {status} .*invalid span"):
            await exp.consume_traces(make_traces(6))
    finally:
        await exp.shutdown()
    assert backend.calls == 1
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 6


async def test_partial_success_in_protobuf_and_json(backend: HttpOTLPDouble,
                                                    make_settings: Callable[..., Settings]) -> None:
    resp = proto.ExportLogsServiceResponse()
    resp.partial_success.rejected_log_records = 3
    body_json = json.dumps({"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "too old"}}).encode()
    backend.script = [HttpReply(200, body=resp.SerializeToString()),
                      HttpReply(200, body=body_json, content_type="application/json")]
    exp = await _start(make_settings, _cfg(endpoint=backend.base))
    try:
        await exp.consume_logs(make_logs(10))
        await exp.consume_logs(make_logs(10))
    finally:
        await exp.shutdown()
    assert backend.calls == 2
    assert _value(exp, "otelcol_exporter_send_failed_log_records_total") == 5
    assert _value(exp, "otelcol_exporter_sent_log_records_total") == 15


async def test_connection_refused_is_retryable(make_settings: Callable[..., Settings],
                                               free_port: Callable[[], int]) -> None:
    exp = await _start(make_settings, _cfg(endpoint=f"http://127.0.0.1:{free_port()}",
                                           retry_on_failure={"enabled": False}))
    try:
        with pytest.raises(ConsumerError) as info:
            await exp.consume_traces(make_traces(1))
        assert not isinstance(info.value, PermanentError)
    finally:
        await exp.shutdown()


async def test_https_with_ca_file_and_skip_verify(certs: dict[str, Path],
                                                  make_settings: Callable[..., Settings]) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    async with running(HttpOTLPDouble(ssl_context=ctx)) as backend:
        for tls in ({"ca_file": str(certs["ca"])}, {"insecure_skip_verify": True}):
            exp = await _start(make_settings, _cfg(endpoint=backend.base, tls=tls))
            try:
                await exp.consume_traces(make_traces(1))
            finally:
                await exp.shutdown()
        untrusted = await _start(make_settings, _cfg(endpoint=backend.base, retry_on_failure={"enabled": False}))
        try:
            with pytest.raises(ConsumerError, match="certificate"):
                await untrusted.consume_traces(make_traces(1))
        finally:
            await untrusted.shutdown()
    assert backend.calls == 2
