"""The ``otlp`` (gRPC) exporter against a loopback OTLP/gRPC double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.component import Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors, ConsumerError, PermanentError
from agent.exporters.otlp.config import Config
from agent.exporters.otlp.exporter import OTLPGrpcExporter
from agent.pdata import Logs, Metrics, Traces, proto
from agent.testing import FakeClock, make_logs, make_metrics, make_traces
from tests.helpers import running
from tests.unit.exporters.conftest import start_exporter
from tests.unit.exporters.otlp.otlp_doubles import GrpcFailure, GrpcOTLPDouble, overlong

FAST_RETRY = {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": "2s"}


@pytest.fixture
async def backend() -> AsyncIterator[GrpcOTLPDouble]:
    async with running(GrpcOTLPDouble()) as double:
        yield double


def _cfg(endpoint: str, **extra: Any) -> Config:
    raw: dict[str, Any] = {"endpoint": endpoint, "tls": {"insecure": True}, "sending_queue": {"enabled": False},
                           "retry_on_failure": FAST_RETRY, **extra}
    return decode(Config, raw, "exporters.otlp")


async def _start(make_settings: Callable[..., Settings], cfg: Config, clock: FakeClock | None = None,
                 name: str = "otlp") -> OTLPGrpcExporter:
    return await start_exporter(OTLPGrpcExporter, make_settings(name), cfg, frozenset(Signal), seed=3, clock=clock)


def _value(exp: OTLPGrpcExporter, name: str) -> float:
    return exp.settings.telemetry.value(name, {"exporter": str(exp.settings.id)})


def test_factory_aliases_and_defaults() -> None:
    assert lookup(Kind.EXPORTER, "otlp_grpc") is lookup(Kind.EXPORTER, "otlp")
    cfg = decode(Config, {"endpoint": "jaeger:4317"}, "exporters.otlp")
    assert (cfg.compression, cfg.timeout, cfg.tls.insecure) == ("gzip", 5.0, False)
    assert cfg.sending_queue.enabled and cfg.retry_on_failure.enabled
    assert cfg.target() == ("jaeger:4317", False)
    assert _cfg("http://collector:4317").target() == ("collector:4317", True)
    assert decode(Config, {"endpoint": "https://c:4317", "tls": {"insecure": True}}, "e").target() == ("c:4317", False)
    full = decode(Config, {"endpoint": "dns:///gw:4317", "balancer_name": "round_robin",
                           "keepalive": {"time": "20s"}, "headers": {"Authorization": "Bearer x"}}, "e")
    assert full.keepalive is not None and full.keepalive.time == 20.0


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "exporters.otlp.endpoint: required"),
    ({"endpoint": "x:1", "compression": "zstd"}, "exporters.otlp.compression: invalid value"),
    ({"endpoint": "x:1", "tls": {"min_version": "1.3"}}, "tls.min_version"),
    ({"endpoint": "x:1", "auth": {"authenticator": "oauth2client"}}, "exporters.otlp.auth: authenticator"),
    ({"endpoint": "x:1", "balancer_name": "ring_hash"}, "balancer_name: invalid value"),
    ({"endpoint": "x:1", "tls": {"cert_file": "c.pem"}}, "tls.key_file"),
    ({"endpoint": "x:1", "bogus": 1}, "exporters.otlp.bogus: unknown key"),
])
def test_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors, match=message):
        decode(Config, raw, "exporters.otlp")


async def test_unmodified_batches_are_sent_as_their_original_bytes(
        backend: GrpcOTLPDouble, make_settings: Callable[..., Settings]) -> None:
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}", compression="none"))
    try:
        # A valid request whose length prefix is non-minimal: any re-encoding would change the bytes.
        raw = overlong(make_traces(4).proto.resource_spans[0].SerializeToString())
        td = Traces.parse(raw)
        assert td.proto.SerializeToString() != raw
        await exp.consume_traces(td)
        # A merged batch (byte concatenation) also goes out as is.
        merged = Traces.merge([Traces.parse(raw), Traces.parse(make_traces(2, batch_index=1).to_bytes())])
        await exp.consume_traces(merged)
        metrics_raw = overlong(make_metrics(3).proto.resource_metrics[0].SerializeToString())
        logs_raw = overlong(make_logs(5).proto.resource_logs[0].SerializeToString())
        await exp.consume_metrics(Metrics.parse(metrics_raw))
        await exp.consume_logs(Logs.parse(logs_raw))
    finally:
        await exp.shutdown()
    assert backend.received == [("traces", raw), ("traces", merged.to_bytes()), ("metrics", metrics_raw),
                                ("logs", logs_raw)]
    assert _value(exp, "otelcol_exporter_sent_spans_total") == 10
    assert _value(exp, "otelcol_exporter_sent_metric_points_total") == 3
    assert _value(exp, "otelcol_exporter_sent_log_records_total") == 5


async def test_modified_batch_is_serialized_and_gzip_on_the_wire(
        backend: GrpcOTLPDouble, make_settings: Callable[..., Settings]) -> None:
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}", headers={"X-Scope-OrgID": "tenant-1"}))
    try:
        td = make_traces(3)
        td.mutable().resource_spans[0].scope_spans[0].spans[0].name = "renamed"
        await exp.consume_traces(td)
    finally:
        await exp.shutdown()
    got = proto.ExportTraceServiceRequest.FromString(backend.received[0][1])
    assert got.resource_spans[0].scope_spans[0].spans[0].name == "renamed"
    md = backend.metadata[0]
    assert md["x-scope-orgid"] == "tenant-1"
    assert exp.client.config.compression == "gzip"  # the channel is created with grpc.Compression.Gzip
    assert md["user-agent"].startswith("otel-sidecar/")


async def test_unavailable_is_retried_with_backoff(backend: GrpcOTLPDouble,
                                                   make_settings: Callable[..., Settings]) -> None:
    backend.script = [GrpcFailure(grpc.StatusCode.UNAVAILABLE), GrpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED), None]
    clock = FakeClock()
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}"), clock)
    try:
        await exp.consume_traces(make_traces(6))
    finally:
        await exp.shutdown()
    assert backend.calls == 3 and len(backend.received) == 1
    assert len(clock.sleeps) == 2 and all(0.004 <= s <= 0.1 for s in clock.sleeps)
    assert _value(exp, "otelcol_exporter_sent_spans_total") == 6
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 0


async def test_retry_info_sets_the_minimum_wait(backend: GrpcOTLPDouble,
                                                make_settings: Callable[..., Settings]) -> None:
    backend.script = [GrpcFailure(grpc.StatusCode.UNAVAILABLE, retry_after=1.5),
                      GrpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after=0.75), None]
    clock = FakeClock()
    retry = {**FAST_RETRY, "max_elapsed_time": "10s"}
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}", retry_on_failure=retry), clock)
    try:
        await exp.consume_traces(make_traces(2))
    finally:
        await exp.shutdown()
    assert clock.sleeps == [1.5, 0.75]
    assert len(backend.received) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED,
                                  grpc.StatusCode.INTERNAL])
async def test_permanent_codes_are_not_retried_and_counted(
        backend: GrpcOTLPDouble, make_settings: Callable[..., Settings], code: grpc.StatusCode) -> None:
    backend.script = [GrpcFailure(code, "nope")]
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}"))
    try:
        with pytest.raises(PermanentError, match=code.name):
            await exp.consume_traces(make_traces(9))
    finally:
        await exp.shutdown()
    assert backend.calls == 1
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 9


async def test_queued_permanent_failure_is_dropped_and_counted(
        backend: GrpcOTLPDouble, make_settings: Callable[..., Settings]) -> None:
    backend.script = [GrpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "bad")]
    cfg = decode(Config, {"endpoint": f"127.0.0.1:{backend.port}", "tls": {"insecure": True},
                          "sending_queue": {"num_consumers": 1}, "retry_on_failure": FAST_RETRY}, "exporters.otlp")
    exp = await _start(make_settings, cfg)
    await exp.consume_traces(make_traces(4))  # queued: accepted
    await exp.consume_traces(make_traces(3, batch_index=1))
    await backend.wait(1)
    await exp.shutdown()
    assert backend.calls == 2
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 4
    assert _value(exp, "otelcol_exporter_sent_spans_total") == 3


async def test_partial_success_counts_rejected_items(backend: GrpcOTLPDouble,
                                                     make_settings: Callable[..., Settings],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    resp = proto.ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 2
    resp.partial_success.error_message = "2 spans too old"
    backend.script = [resp.SerializeToString(), resp.SerializeToString()]
    exp = await _start(make_settings, _cfg(f"127.0.0.1:{backend.port}"))
    try:
        await exp.consume_traces(make_traces(5))
        await exp.consume_traces(make_traces(5))
    finally:
        await exp.shutdown()
    assert backend.calls == 2  # not retried
    assert _value(exp, "otelcol_exporter_send_failed_spans_total") == 4
    assert _value(exp, "otelcol_exporter_sent_spans_total") == 6  # sent + failed == items
    warnings = [r for r in caplog.records if "Partial success" in r.getMessage()]
    assert len(warnings) == 1 and "2 spans too old" in warnings[0].getMessage()


async def test_unreachable_endpoint_is_retryable(make_settings: Callable[..., Settings],
                                                 free_port: Callable[[], int]) -> None:
    cfg = _cfg(f"127.0.0.1:{free_port()}", retry_on_failure={"enabled": False}, timeout="2s")
    exp = await _start(make_settings, cfg)
    try:
        with pytest.raises(ConsumerError) as info:
            await exp.consume_traces(make_traces(1))
        assert not isinstance(info.value, PermanentError)
    finally:
        await exp.shutdown()


async def test_tls_with_ca_file(certs: dict[str, Path], make_settings: Callable[..., Settings]) -> None:
    creds = grpc.ssl_server_credentials([(certs["key"].read_bytes(), certs["cert"].read_bytes())])
    async with running(GrpcOTLPDouble(server_credentials=creds)) as backend:
        cfg = decode(Config, {"endpoint": f"localhost:{backend.port}", "tls": {"ca_file": str(certs["ca"])},
                              "sending_queue": {"enabled": False}, "retry_on_failure": {"enabled": False}}, "e")
        exp = await _start(make_settings, cfg)
        try:
            await exp.consume_traces(make_traces(2))
            # Without the CA, the handshake fails: retryable UNAVAILABLE.
            bad = await _start(make_settings, decode(Config, {
                "endpoint": f"localhost:{backend.port}", "sending_queue": {"enabled": False},
                "retry_on_failure": {"enabled": False}, "timeout": "2s"}, "e"), name="otlp/bad")
            try:
                with pytest.raises(ConsumerError, match="UNAVAILABLE"):
                    await bad.consume_traces(make_traces(1))
            finally:
                await bad.shutdown()
        finally:
            await exp.shutdown()
    assert len(backend.received) == 1


async def test_missing_ca_file_fails_start(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    cfg = decode(Config, {"endpoint": "localhost:1", "tls": {"ca_file": str(tmp_path / "nope.pem")}}, "e")
    exp = OTLPGrpcExporter(make_settings("otlp"), cfg, frozenset(Signal))
    with pytest.raises(ValueError, match=r"nope\.pem"):
        await exp.start(None)  # type: ignore[arg-type]
    await exp.shutdown()



@pytest.mark.parametrize("key", ["grpc-timeout", "bad key", "x-bin"])
def test_invalid_metadata_keys(key: str) -> None:
    with pytest.raises(ConfigErrors, match=f"headers.{key}"):
        decode(Config, {"endpoint": "x:1", "headers": {key: "v"}}, "exporters.otlp")
