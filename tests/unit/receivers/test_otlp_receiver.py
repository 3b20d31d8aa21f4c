"""The ``otlp`` receiver end to end on loopback: real SDK exporters, bad inputs,
limits, status mapping, lifecycle and self-metrics."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import socket
import warnings
import zlib
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest

from agent.component import Signal
from agent.errors import ConsumerError, MemoryLimitError, PermanentError, QueueFullError, ShutdownError, ThrottleError
from agent.pdata import Metrics, PData, Traces, otlpjson, proto
from agent.receivers.otlp.receiver import ListenError
from agent.testing import ErrorConsumer, SinkConsumer, make_logs, make_metrics, make_traces
from tests import sdk
from tests.unit.receivers.conftest import Running, Serve, grpc_export

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "fixtures" / "otlp-json"
PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
MiB = 1 << 20


def traces_bytes(n: int = 3) -> bytes:
    return make_traces(n).to_bytes()


async def post(r: Running, path: str, body: bytes | Any, headers: dict[str, str] | None = None,
               method: str = "POST") -> httpx.Response:
    async with httpx.AsyncClient(base_url=r.http_url, timeout=30) as c:
        return await c.request(method, path, content=body, headers=headers if headers is not None else PB)


async def assert_still_serving(r: Running) -> None:
    before = r.sink.count(Signal.TRACES)
    resp = await post(r, "/v1/traces", traces_bytes(2))
    assert resp.status_code == 200, resp.text
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(2))
    assert res.code == grpc.StatusCode.OK, res.details
    assert r.sink.count(Signal.TRACES) == before + 4


# -- real OpenTelemetry SDK exporters -------------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_sdk_exporters_deliver_all_signals(serve: Serve, protocol: sdk.Protocol) -> None:
    r = await serve()
    endpoint = r.grpc_target if protocol == "grpc" else r.http_url
    await asyncio.to_thread(sdk.send_spans, protocol, endpoint, 300, attrs={"http.route": "/items/{id}"})
    await asyncio.to_thread(sdk.send_metrics, protocol, endpoint, 7)
    await asyncio.to_thread(sdk.send_logs, protocol, endpoint, 25)
    await r.sink.wait_for(Signal.TRACES, 300)
    await r.sink.wait_for(Signal.METRICS, 7)
    await r.sink.wait_for(Signal.LOGS, 25)
    assert r.sink.count(Signal.TRACES) == 300
    assert r.sink.count(Signal.LOGS) == 25
    received = r.sink.received[Signal.TRACES][0]
    assert received.has_original_bytes  # wire bytes kept for forwarding
    span = received.proto.resource_spans[0].scope_spans[0].spans[0]
    assert len(span.trace_id) == 16 and span.name.startswith("op-")
    transport = protocol
    assert r.value("otelcol_receiver_accepted_spans_total", transport) == 300
    assert r.value("otelcol_receiver_accepted_log_records_total", transport) == 25
    assert r.value("otelcol_receiver_accepted_metric_points_total", transport) >= 7
    assert r.value("otelcol_receiver_refused_spans_total", transport) == 0


async def test_grpc_gzip_and_json_vectors_over_http(serve: Serve) -> None:
    r = await serve()
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(5), compression=grpc.Compression.Gzip)
    assert res.code == grpc.StatusCode.OK and res.response == b""
    for name, path, signal in (("trace.json", "/v1/traces", Signal.TRACES),
                               ("metrics.json", "/v1/metrics", Signal.METRICS),
                               ("logs.json", "/v1/logs", Signal.LOGS)):
        resp = await post(r, path, (FIXTURES / name).read_bytes(), {"Content-Type": "application/json; charset=utf-8"})
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/json") and resp.json() == {}
        assert r.sink.count(signal) >= 1
    got = r.sink.received[Signal.TRACES][-1].proto.resource_spans[0].scope_spans[0].spans[0]
    assert got.trace_id.hex() == "5b8efff798038103d269b633813fc60c"


async def test_json_hex_ids_round_trip_through_the_receiver(serve: Serve) -> None:
    r = await serve(no_grpc=True)
    sent = make_traces(4)
    body = otlpjson.encode_request(sent)
    doc = json.loads(body)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"], span["spanId"] = span["traceId"].upper(), span["spanId"].upper()
    resp = await post(r, "/v1/traces", json.dumps(doc).encode(), JS)
    assert resp.status_code == 200
    got = r.sink.received[Signal.TRACES][0]
    assert got.proto == sent.proto
    assert otlpjson.encode_request(got) == body


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zlib", "deflate-raw", "zstd", "snappy"])
async def test_http_compressed_bodies(serve: Serve, encoding: str) -> None:
    cramjam = pytest.importorskip("cramjam")
    r = await serve()
    raw = traces_bytes(10)
    header = encoding
    if encoding == "gzip":
        body = gzip.compress(raw)
    elif encoding in ("deflate", "zlib"):
        body = zlib.compress(raw)
    elif encoding == "deflate-raw":
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body, header = c.compress(raw) + c.flush(), "deflate"
    elif encoding == "zstd":
        body = bytes(cramjam.zstd.compress(raw))
    else:
        body = bytes(cramjam.snappy.compress_raw(raw))
    resp = await post(r, "/v1/traces", body, {**PB, "Content-Encoding": header})
    assert resp.status_code == 200, resp.text
    assert r.sink.count(Signal.TRACES) == 10


async def test_chunked_body_without_content_length(serve: Serve) -> None:
    r = await serve(no_grpc=True, http={"max_request_body_size": 64 * 1024})
    raw = gzip.compress(traces_bytes(20))

    async def gen(data: bytes) -> Any:
        for i in range(0, len(data), 100):
            yield data[i:i + 100]

    resp = await post(r, "/v1/traces", gen(raw), {**PB, "Content-Encoding": "gzip"})
    assert resp.status_code == 200 and r.sink.count(Signal.TRACES) == 20
    resp = await post(r, "/v1/traces", gen(bytes(100 * 1024)), PB)
    assert resp.status_code == 413


async def test_empty_request_is_success_without_calling_the_pipeline(serve: Serve) -> None:
    consumer = ErrorConsumer(lambda: AssertionError("must not be called"))
    r = await serve(consumer=consumer)
    assert (await post(r, "/v1/traces", b"")).status_code == 200
    assert (await post(r, "/v1/logs", b"{}", JS)).json() == {}
    res = await grpc_export(r.grpc_target, Signal.METRICS, b"")
    assert res.code == grpc.StatusCode.OK
    assert consumer.calls == 0


# -- bad inputs (R10) -------------------------------------------------------------------

def _nested_any(levels: int) -> proto.AnyValue:
    v = proto.AnyValue(string_value="leaf")
    for _ in range(levels):
        w = proto.AnyValue()
        w.kvlist_value.values.add(key="k").value.CopyFrom(v)
        v = w
    return v


def _deep_request() -> bytes:
    req = proto.ExportTraceServiceRequest()
    s = req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"t" * 16, span_id=b"s" * 8)
    s.attributes.add(key="deep").value.CopyFrom(_nested_any(40))
    return req.SerializeToString()


def _span_bytes(**fields: Any) -> bytes:
    req = proto.ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(**fields)
    return req.SerializeToString()


GOOD = {"trace_id": b"t" * 16, "span_id": b"s" * 8, "name": "ok"}

PROTOBUF_BAD = [
    ("truncated", traces_bytes(3)[:-7], "invalid ExportTraceServiceRequest protobuf"),
    ("bad wire type", b"\x0f\x00", "invalid ExportTraceServiceRequest protobuf"),
    ("stray end group", b"\x0c", "invalid ExportTraceServiceRequest protobuf"),
    ("varint over 10 bytes", b"\x08" + b"\xff" * 11 + b"\x01", "invalid ExportTraceServiceRequest protobuf"),
    ("length past end", b"\x0a\x10abc", "invalid ExportTraceServiceRequest protobuf"),
    ("nesting too deep", _deep_request(), "invalid ExportTraceServiceRequest protobuf"),
    ("invalid utf-8", _span_bytes(**GOOD)[:-2] + b"\x02\xff\xfe", "invalid ExportTraceServiceRequest protobuf"),
    ("trace id of 15 bytes", _span_bytes(**{**GOOD, "trace_id": b"t" * 15}), "trace_id must be 16 bytes, got 15"),
    ("zero trace id", _span_bytes(**{**GOOD, "trace_id": bytes(16)}), "trace_id is all zeros"),
    ("missing span id", _span_bytes(**{**GOOD, "span_id": b""}), "span_id is empty"),
    ("zero span id", _span_bytes(**{**GOOD, "span_id": bytes(8)}), "span_id is all zeros"),
]


def test_invalid_utf8_case_is_really_invalid() -> None:
    bad = dict((n, b) for n, b, _ in PROTOBUF_BAD)["invalid utf-8"]
    with pytest.raises(Exception):  # noqa: B017 - upb raises DecodeError
        Traces.parse(bad)
    assert Traces.parse(_span_bytes(**GOOD)).item_count == 1


@pytest.mark.parametrize(("name", "body", "message"), PROTOBUF_BAD, ids=[c[0] for c in PROTOBUF_BAD])
async def test_bad_protobuf_gets_400_and_invalid_argument(serve: Serve, name: str, body: bytes, message: str) -> None:
    r = await serve()
    resp = await post(r, "/v1/traces", body)
    assert resp.status_code == 400
    st = proto.RpcStatus.FromString(resp.content)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and message in st.message
    res = await grpc_export(r.grpc_target, Signal.TRACES, body)
    assert res.code == grpc.StatusCode.INVALID_ARGUMENT and message in res.details
    assert res.retry_delay is None
    await assert_still_serving(r)
    for transport in ("http", "grpc"):
        assert r.telemetry.value("otelcol_receiver_requests_total", {
            "receiver": "otlp", "transport": transport, "otel_signal": "traces", "outcome": "failure"}) == 1
        assert r.telemetry.value("otelcol_receiver_requests_total", {
            "receiver": "otlp", "transport": transport, "otel_signal": "traces", "outcome": "success"}) == 1
    assert r.sink.count(Signal.TRACES) == 4


def _json_span(**span: Any) -> bytes:
    base = {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "x"}
    base.update(span)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [base]}]}]}).encode()


JSON_BAD = [
    ("malformed", b'{"resourceSpans": [', "malformed JSON"),
    ("top-level array", b"[]", "must be a JSON object, got an array"),
    ("enum as string", _json_span(kind="SPAN_KIND_SERVER"), "enums must be integers"),
    ("base64 id", _json_span(traceId="W47/95gDgQPSabYzgT/GDA=="), "hex, not base64"),
    ("short span id", _json_span(spanId="EEE19B"), "spanId: must be 16 hex digits"),
    ("zero trace id", _json_span(traceId="0" * 32), "trace_id is all zeros"),
    ("missing trace id", _json_span(traceId=""), "trace_id is empty"),
    ("deep nesting", b'{"resourceSpans":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "malformed JSON"),
    ("invalid utf-8", b'{"resourceSpans":[{"schemaUrl":"\xff"}]}', "malformed JSON"),
]


@pytest.mark.parametrize(("name", "body", "message"), JSON_BAD, ids=[c[0] for c in JSON_BAD])
async def test_bad_json_gets_400_with_a_clear_message(serve: Serve, name: str, body: bytes, message: str) -> None:
    r = await serve()
    resp = await post(r, "/v1/traces", body, JS)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["code"] == 3 and message in resp.json()["message"]
    await assert_still_serving(r)


async def test_snake_case_and_unknown_json_keys_are_ignored(serve: Serve) -> None:
    r = await serve()
    resp = await post(r, "/v1/traces", _json_span(start_time_unix_nano="5", brandNew=True), JS)
    assert resp.status_code == 200
    assert r.sink.received[Signal.TRACES][0].proto.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano == 0


@pytest.mark.parametrize(("method", "path", "headers", "status", "text"), [
    ("GET", "/v1/traces", PB, 405, "405 method not allowed"),
    ("PUT", "/v1/metrics", PB, 405, "405 method not allowed"),
    ("POST", "/v1/traces", {"Content-Type": "text/plain"}, 415, "unsupported media type"),
    ("POST", "/v1/traces", {}, 415, "unsupported media type"),
    ("POST", "/v1/traces", {**PB, "Content-Encoding": "br"}, 415, "unsupported Content-Encoding 'br'"),
    ("POST", "/v1/traces", {**PB, "Content-Encoding": "gzip, gzip"}, 415, "unsupported Content-Encoding 'gzip, gzip'"),
    ("POST", "/v2/traces", PB, 404, "404 page not found"),
])
async def test_http_method_type_and_encoding_errors(serve: Serve, method: str, path: str, headers: dict[str, str],
                                                    status: int, text: str) -> None:
    r = await serve()
    resp = await post(r, path, traces_bytes(), headers, method=method)
    assert resp.status_code == status
    if status == 405:
        assert resp.headers["Allow"] == "POST"
    content = resp.text if "text/plain" in resp.headers["Content-Type"] else proto.RpcStatus.FromString(
        resp.content).message
    assert text in content
    await assert_still_serving(r)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_corrupt_compressed_bodies_get_400(serve: Serve, encoding: str) -> None:
    r = await serve()
    good = gzip.compress(traces_bytes()) if encoding == "gzip" else zlib.compress(traces_bytes())
    for body in (good[:-6], good[:-8] + b"\x00\x00\x00\x00" + good[-4:] if encoding == "gzip" else b"\x78\x9c\xff"):
        resp = await post(r, "/v1/traces", body, {**PB, "Content-Encoding": encoding})
        assert resp.status_code == 400
        assert f"invalid {encoding} body" in proto.RpcStatus.FromString(resp.content).message
    await assert_still_serving(r)


# -- limits (R9) -------------------------------------------------------------------------

def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _gzip_bomb(total: int) -> bytes:
    """Concatenated gzip members of zeros: ``total`` bytes decompressed, ~1/1000 compressed."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = b"".join(c.compress(bytes(MiB)) for _ in range(64)) + c.flush()
    return member * (total // (64 * MiB))


async def test_oversized_bodies_get_413_quickly(serve: Serve) -> None:
    r = await serve()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    resp = await post(r, "/v1/traces", bytes(21 * MiB))
    assert resp.status_code == 413 and loop.time() - t0 < 5
    assert "exceeds max_request_body_size (20971520 bytes)" in proto.RpcStatus.FromString(resp.content).message
    assert r.telemetry.value("otelcol_receiver_requests_total", {
        "receiver": "otlp", "transport": "http", "otel_signal": "traces", "outcome": "failure"}) == 1
    await assert_still_serving(r)


async def test_decompression_bombs_get_413_without_memory_growth(serve: Serve) -> None:
    cramjam = pytest.importorskip("cramjam")
    r = await serve()
    gz = _gzip_bomb(1024 * MiB)
    assert len(gz) < 2 * MiB
    comp = cramjam.zstd.Compressor()
    for _ in range(256):
        comp.compress(bytes(MiB))
    zst = bytes(comp.finish())
    d = zlib.compressobj(9, zlib.DEFLATED, 15)
    deflate = b"".join(d.compress(bytes(MiB)) for _ in range(256)) + d.flush()
    await post(r, "/v1/traces", _gzip_bomb(64 * MiB), {**PB, "Content-Encoding": "gzip"})  # warm up
    before = _rss()
    loop = asyncio.get_running_loop()
    for body, enc in ((gz, "gzip"), (zst, "zstd"), (deflate, "deflate"), (gz, "gzip")):
        t0 = loop.time()
        resp = await post(r, "/v1/traces", body, {**PB, "Content-Encoding": enc})
        assert resp.status_code == 413, enc
        assert "decompressed request body exceeds" in proto.RpcStatus.FromString(resp.content).message
        assert loop.time() - t0 < 5
    assert _rss() - before < 50 * MiB
    await assert_still_serving(r)


async def test_grpc_message_size_limit_also_applies_after_gzip(serve: Serve) -> None:
    r = await serve()
    big = make_traces(1)
    big.mutable().resource_spans[0].scope_spans[0].spans[0].attributes.add(key="big").value.string_value = "x" * (5 * MiB)
    for compression in (None, grpc.Compression.Gzip):
        res = await grpc_export(r.grpc_target, Signal.TRACES, big.to_bytes(), compression=compression)
        assert res.code == grpc.StatusCode.RESOURCE_EXHAUSTED, compression
        assert res.retry_delay is None
    await assert_still_serving(r)
    r2 = await serve(grpc={"max_recv_msg_size_mib": 8}, no_http=True)
    res = await grpc_export(r2.grpc_target, Signal.TRACES, big.to_bytes())
    assert res.code == grpc.StatusCode.OK


async def test_slow_body_gets_408_and_slow_headers_are_cut(serve: Serve) -> None:
    r = await serve(no_grpc=True, http={"read_timeout": "300ms", "read_header_timeout": "300ms"})
    addr = r.receiver.http_address
    assert isinstance(addr, tuple)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                 b"Content-Length: 1000\r\n\r\n" + b"\x0a")
    await writer.drain()
    t0 = loop.time()
    head = await asyncio.wait_for(reader.read(200), 5)
    assert head.startswith(b"HTTP/1.1 408") and loop.time() - t0 < 3
    writer.close()
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()


# -- pipeline errors, shutdown ------------------------------------------------------------

@pytest.mark.parametrize(("error", "retry_after", "header"), [
    (lambda: QueueFullError("sending queue is full", retry_after=2.5), 2.5, "3"),
    (lambda: MemoryLimitError("memory limiter: above soft limit"), 1.0, "1"),
    (lambda: ThrottleError("slow down", retry_after=0.2), 0.2, "1"),
    (lambda: ShutdownError("exporter stopping"), 1.0, "1"),
    (lambda: ConsumerError("backend unavailable"), 1.0, "1"),
])
async def test_retryable_pipeline_errors(serve: Serve, error: Any, retry_after: float, header: str) -> None:
    consumer = ErrorConsumer(error)
    r = await serve(consumer=consumer)
    text = str(error())
    resp = await post(r, "/v1/traces", traces_bytes(4))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == header
    st = proto.RpcStatus.FromString(resp.content)
    assert st.code == grpc.StatusCode.UNAVAILABLE.value[0] and st.message == text
    resp = await post(r, "/v1/traces", otlpjson.encode_request(make_traces(2)), JS)
    assert resp.status_code == 503 and resp.json() == {"code": 14, "message": text}
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(4))
    assert res.code == grpc.StatusCode.UNAVAILABLE and res.details == text
    assert res.retry_delay == pytest.approx(retry_after)
    assert r.value("otelcol_receiver_refused_spans_total", "http") == 6
    assert r.value("otelcol_receiver_refused_spans_total", "grpc") == 4
    assert r.value("otelcol_receiver_accepted_spans_total", "grpc") == 0


async def test_permanent_pipeline_error_is_400_and_invalid_argument(serve: Serve) -> None:
    r = await serve(consumer=ErrorConsumer(lambda: PermanentError("rejected by backend: 400")))
    resp = await post(r, "/v1/logs", make_logs(2).to_bytes())
    assert resp.status_code == 400 and "Retry-After" not in resp.headers
    assert proto.RpcStatus.FromString(resp.content).message == "rejected by backend: 400"
    res = await grpc_export(r.grpc_target, Signal.LOGS, make_logs(2).to_bytes())
    assert res.code == grpc.StatusCode.INVALID_ARGUMENT and res.retry_delay is None


async def test_unexpected_pipeline_exception_is_retryable_and_logged_once(
        serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    r = await serve(consumer=ErrorConsumer(lambda: RuntimeError("secret payload detail")))
    with caplog.at_level(logging.ERROR, logger="test.otlp"):
        for _ in range(3):
            resp = await post(r, "/v1/traces", traces_bytes())
            assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
            assert "secret" not in resp.text
        res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes())
    assert res.code == grpc.StatusCode.UNAVAILABLE and res.retry_delay == 1.0 and "secret" not in res.details
    records = [rec for rec in caplog.records if rec.name == "test.otlp"]
    assert len(records) == 1 and records[0].exc_info is not None  # rate limited, with traceback


async def test_signals_without_a_pipeline(serve: Serve) -> None:
    r = await serve(signals=[Signal.TRACES])
    resp = await post(r, "/v1/metrics", make_metrics(1).to_bytes())
    assert resp.status_code == 404
    assert "no metrics pipeline (it accepts: traces)" in proto.RpcStatus.FromString(resp.content).message
    res = await grpc_export(r.grpc_target, Signal.LOGS, make_logs(1).to_bytes())
    assert res.code == grpc.StatusCode.UNIMPLEMENTED and "no logs pipeline" in res.details
    await assert_still_serving(r)


class _Gate(SinkConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def _take(self, signal: Signal, data: PData) -> None:
        self.entered.set()
        await self.release.wait()
        await super()._take(signal, data)


async def test_stop_accepting_refuses_new_requests_and_finishes_in_flight(serve: Serve) -> None:
    gate = _Gate()
    r = await serve(consumer=gate)
    in_flight_http = asyncio.create_task(post(r, "/v1/traces", traces_bytes(3)))
    await asyncio.wait_for(gate.entered.wait(), 5)
    gate.entered.clear()
    in_flight_grpc = asyncio.create_task(grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(2)))
    await asyncio.wait_for(gate.entered.wait(), 5)
    await r.receiver.stop_accepting()
    resp = await post(r, "/v1/traces", traces_bytes(1))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
    assert "shutting down" in proto.RpcStatus.FromString(resp.content).message
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(1))
    assert res.code == grpc.StatusCode.UNAVAILABLE and res.retry_delay == 1.0
    gate.release.set()
    assert (await in_flight_http).status_code == 200
    assert (await in_flight_grpc).code == grpc.StatusCode.OK
    assert gate.count(Signal.TRACES) == 5
    await r.receiver.shutdown()
    await r.receiver.shutdown()
    with pytest.raises(httpx.ConnectError):
        await post(r, "/v1/traces", traces_bytes(1))


async def test_shutdown_waits_for_in_flight_requests(serve: Serve) -> None:
    gate = _Gate()
    r = await serve(consumer=gate, no_grpc=True)
    in_flight = asyncio.create_task(post(r, "/v1/traces", traces_bytes(3)))
    await asyncio.wait_for(gate.entered.wait(), 5)
    stopping = asyncio.create_task(r.receiver.shutdown())
    await asyncio.sleep(0.1)
    gate.release.set()
    await stopping
    assert (await in_flight).status_code == 200 and gate.count(Signal.TRACES) == 3


async def test_shutdown_without_start_and_port_in_use(serve: Serve, settings: Any) -> None:
    from agent.config.decode import decode
    from agent.receivers.otlp.config import Config
    from agent.receivers.otlp.factory import create

    idle = create(settings, decode(Config, {"protocols": {"grpc": None, "http": None}}), {})
    await idle.shutdown()
    await idle.shutdown()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for protocols in ({"grpc": {"endpoint": f"127.0.0.1:{port}"}},
                          {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": f"127.0.0.1:{port}"}}):
            receiver = create(settings, decode(Config, {"protocols": protocols}), {Signal.TRACES: SinkConsumer()})
            with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
                await receiver.start(None)
            await receiver.shutdown()


# -- metrics partial success -----------------------------------------------------------------

def _metrics_with_bad_points() -> Metrics:
    data = make_metrics(3)
    m = data.mutable().resource_metrics[0].scope_metrics[0].metrics.add(name="latency")
    m.histogram.data_points.add(time_unix_nano=10, bucket_counts=[1, 1], explicit_bounds=[1.0], count=2)
    m.histogram.data_points.add(time_unix_nano=10, bucket_counts=[1, 1], explicit_bounds=[math.nan], count=2)
    m.histogram.data_points.add(time_unix_nano=1 << 63, count=1)
    return data


async def test_invalid_metric_points_are_dropped_with_partial_success(serve: Serve) -> None:
    r = await serve()
    resp = await post(r, "/v1/metrics", _metrics_with_bad_points().to_bytes())
    assert resp.status_code == 200
    ps = proto.ExportMetricsServiceResponse.FromString(resp.content).partial_success
    assert ps.rejected_data_points == 2 and "dropped 2 invalid data points" in ps.error_message
    resp = await post(r, "/v1/metrics", otlpjson.encode_request(_metrics_with_bad_points()), JS)
    assert resp.json()["partialSuccess"]["rejectedDataPoints"] == "2"
    res = await grpc_export(r.grpc_target, Signal.METRICS, _metrics_with_bad_points().to_bytes())
    assert res.code == grpc.StatusCode.OK and res.response is not None
    assert proto.ExportMetricsServiceResponse.FromString(res.response).partial_success.rejected_data_points == 2
    assert r.sink.count(Signal.METRICS) == 12
    assert r.value("otelcol_receiver_failed_metric_points_total", "http") == 4
    assert r.value("otelcol_receiver_accepted_metric_points_total", "grpc") == 4


# -- TLS and CORS ------------------------------------------------------------------------------

def _make_cert(tmp: Path, name: str, ca: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    import subprocess

    key, cert = tmp / f"{name}.key", tmp / f"{name}.pem"
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    else:
        csr = tmp / f"{name}.csr"
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                        "-subj", f"/CN={name}"], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
                        "-CAcreateserial", "-out", str(cert), "-days", "2"], check=True, capture_output=True)
    return key, cert


async def test_tls_on_both_protocols(serve: Serve, tmp_path: Path) -> None:
    import ssl

    key, cert = _make_cert(tmp_path, "server")
    tls = {"cert_file": str(cert), "key_file": str(key)}
    r = await serve(grpc={"tls": tls}, http={"tls": tls})
    ctx = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(verify=ctx) as c:
        resp = await c.post(r.http_url.replace("http:", "https:") + "/v1/traces", content=traces_bytes(2), headers=PB)
    assert resp.status_code == 200
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(3), credentials=creds)
    assert res.code == grpc.StatusCode.OK
    assert r.sink.count(Signal.TRACES) == 5
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.maximum_version = ssl.TLSVersion.TLSv1_1  # what an old client offers
    with pytest.raises((httpx.ConnectError, ssl.SSLError)):
        async with httpx.AsyncClient(verify=old) as c:
            await c.post(r.http_url.replace("http:", "https:") + "/v1/traces", content=b"", headers=PB)
    with pytest.raises(httpx.HTTPError):  # plaintext to a TLS port
        await post(r, "/v1/traces", traces_bytes(1))


async def test_mutual_tls_requires_a_client_certificate(serve: Serve, tmp_path: Path) -> None:
    import ssl

    ca = _make_cert(tmp_path, "ca")
    key, cert = _make_cert(tmp_path, "server")
    ckey, ccert = _make_cert(tmp_path, "client", ca=ca)
    tls = {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(ca[1])}
    r = await serve(grpc={"tls": tls}, http={"tls": tls})
    url = r.http_url.replace("http:", "https:") + "/v1/traces"
    ctx = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(verify=ctx) as c:
            await c.post(url, content=traces_bytes(1), headers=PB)
    ctx.load_cert_chain(str(ccert), str(ckey))
    async with httpx.AsyncClient(verify=ctx) as c:
        assert (await c.post(url, content=traces_bytes(1), headers=PB)).status_code == 200
    no_cert = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(1), credentials=no_cert)
    assert res.code == grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(cert.read_bytes(), ckey.read_bytes(), ccert.read_bytes())
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(1), credentials=with_cert)
    assert res.code == grpc.StatusCode.OK


async def test_cors(serve: Serve) -> None:
    r = await serve(no_grpc=True, http={"cors": {"allowed_origins": ["https://*.example.com"], "max_age": 600,
                                                  "allowed_headers": ["X-Custom"]},
                                         "response_headers": {"X-Served-By": "sidecar"}})
    async with httpx.AsyncClient(base_url=r.http_url) as c:
        pre = await c.options("/v1/traces", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-custom"})
        assert pre.status_code == 204
        assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert pre.headers["Access-Control-Allow-Credentials"] == "true"
        assert pre.headers["Access-Control-Allow-Headers"] == "content-type, x-custom"
        assert pre.headers["Access-Control-Max-Age"] == "600"
        other = await c.options("/v1/traces", headers={"Origin": "https://evil.test",
                                                        "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in other.headers
        post_ok = await c.post("/v1/traces", content=traces_bytes(1),
                               headers={**PB, "Origin": "https://app.example.com"})
        assert post_ok.status_code == 200 and post_ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert post_ok.headers["X-Served-By"] == "sidecar"
        post_other = await c.post("/v1/traces", content=traces_bytes(1), headers={**PB, "Origin": "https://evil.test"})
        assert "Access-Control-Allow-Origin" not in post_other.headers
        assert (await c.options("/v1/traces")).status_code == 405  # not a CORS preflight


async def test_custom_paths_and_unix_sockets(serve: Serve, tmp_path: Path) -> None:
    r = await serve(grpc={"transport": "unix", "endpoint": str(tmp_path / "g.sock")},
                    http={"transport": "unix", "endpoint": str(tmp_path / "h.sock"), "traces_url_path": "/otlp/t"})
    transport = httpx.AsyncHTTPTransport(uds=str(tmp_path / "h.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as c:
        assert (await c.post("/otlp/t", content=traces_bytes(2), headers=PB)).status_code == 200
        assert (await c.post("/v1/traces", content=traces_bytes(2), headers=PB)).status_code == 404
    res = await grpc_export(f"unix:{tmp_path / 'g.sock'}", Signal.TRACES, traces_bytes(1))
    assert res.code == grpc.StatusCode.OK
    assert r.sink.count(Signal.TRACES) == 3


async def test_tls_certificates_reload_without_restart(serve: Serve, tmp_path: Path) -> None:
    import os
    import ssl

    key, cert = _make_cert(tmp_path, "first")
    tls = {"cert_file": str(cert), "key_file": str(key), "reload_interval": "100ms"}
    r = await serve(grpc={"tls": tls}, http={"tls": tls})
    url = r.http_url.replace("http:", "https:") + "/v1/traces"
    first_ca = cert.read_bytes()
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    new_key, new_cert = _make_cert(new_dir, "second")
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    await asyncio.sleep(0.4)
    ctx = ssl.create_default_context(cadata=cert.read_text())
    async with httpx.AsyncClient(verify=ctx) as c:
        assert (await c.post(url, content=traces_bytes(1), headers=PB)).status_code == 200
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    assert (await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(1), credentials=creds)).code == grpc.StatusCode.OK
    stale = grpc.ssl_channel_credentials(root_certificates=first_ca)
    assert (await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(1), credentials=stale)).code \
        == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_shutdown_under_load_refuses_cleanly(serve: Serve, protocol: str) -> None:
    """R7: clients that retry at once see only success, then UNAVAILABLE/503, then a closed port."""
    import threading

    r = await serve(no_http=protocol == "grpc", no_grpc=protocol == "http")
    body = traces_bytes(5)
    outcomes: list[str] = []
    stop = threading.Event()

    def grpc_loop() -> None:
        with grpc.insecure_channel(r.grpc_target) as channel:
            call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            while not stop.is_set():
                try:
                    call(body, timeout=5)
                    outcomes.append("ok")
                except grpc.RpcError as e:
                    outcomes.append(e.code().name)
                    if "shutting down" not in (e.details() or ""):
                        stop.wait(0.01)

    def http_loop() -> None:
        with httpx.Client() as c:
            while not stop.is_set():
                try:
                    outcomes.append(str(c.post(r.http_url + "/v1/traces", content=body, headers=PB).status_code))
                except httpx.ConnectError:
                    outcomes.append("refused")
                    stop.wait(0.01)
                except httpx.HTTPError as e:
                    outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=grpc_loop if protocol == "grpc" else http_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        await asyncio.sleep(0.3)
        await r.receiver.stop_accepting()
        await r.receiver.shutdown()
        await asyncio.sleep(0.2)
    finally:
        stop.set()

        def join_all() -> None:
            for t in threads:
                t.join()

        await asyncio.to_thread(join_all)
    allowed = {"ok", "UNAVAILABLE"} if protocol == "grpc" else {"200", "503", "refused"}
    assert set(outcomes) <= allowed, sorted(set(outcomes))
    assert ("UNAVAILABLE" in outcomes) if protocol == "grpc" else ("503" in outcomes)


async def test_grpc_server_options_from_collector_keys(serve: Serve) -> None:
    r = await serve(no_http=True, grpc={
        "max_concurrent_streams": 8, "read_buffer_size": "256KiB", "include_metadata": True,
        "keepalive": {"server_parameters": {"max_connection_idle": "30s", "max_connection_age": "1h",
                                            "max_connection_age_grace": "5s", "time": "2h", "timeout": "20s"},
                      "enforcement_policy": {"min_time": "5s", "permit_without_stream": True}}})
    res = await grpc_export(r.grpc_target, Signal.TRACES, traces_bytes(2))
    assert res.code == grpc.StatusCode.OK and r.sink.count(Signal.TRACES) == 2
