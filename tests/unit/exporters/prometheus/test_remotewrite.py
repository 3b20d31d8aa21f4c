"""The ``prometheusremotewrite`` exporter: config, WriteRequest encoding, HTTP contract, staleness."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import cramjam
import pytest
from aiohttp import web

from agent import __version__
from agent.component import Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors, ConsumerError, PermanentError, ThrottleError
from agent.exporters.prometheusremotewrite import FACTORY, Config, RemoteWriteExporter
from agent.exporters.prometheusremotewrite.writerequest import STALE_NAN_BITS
from agent.telemetry.metrics import SelfMetrics
from agent.testing import FakeClock

from .helpers import DELTA, NO_RECORDED_VALUE, SEC, T0, exp, hist, metric, num, request, summary
from .pb_schema import parse_write_request

WALL = 1_800_000_000.0  # the fake wall clock (s), after every point time


def cfg(url: str = "http://127.0.0.1:1/api/v1/write", **kw: Any) -> Config:
    return decode(Config, {"endpoint": url, **kw}, "exporters.prometheusremotewrite")


def series_of(wr: Any) -> dict[tuple[tuple[str, str], ...], Any]:
    return {tuple((lb.name, lb.value) for lb in ts.labels): ts for ts in wr.timeseries}


def by_name(wr: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for ts in wr.timeseries:
        name = next(lb.value for lb in ts.labels if lb.name == "__name__")
        out.setdefault(name, []).append(ts)
    return out


def label_map(ts: Any) -> dict[str, str]:
    return {lb.name: lb.value for lb in ts.labels}


@dataclass
class Receiver:
    """A fake remote-write endpoint: records requests, answers scripted statuses."""

    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    url: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), parse_write_request(bytes(cramjam.snappy.decompress_raw(body)))))
        self.changed.set()
        if self.statuses:
            status, headers = self.statuses.pop(0)
            return web.Response(status=status, headers=headers, text="nope")
        return web.Response(status=204)

    async def wait(self, n: int, timeout: float = 5.0) -> None:
        async def loop() -> None:
            while len(self.requests) < n:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def receiver(free_port: Callable[[], int]) -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/api/v1/write", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    rec.url = f"http://127.0.0.1:{port}/api/v1/write"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def make_exporter(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    made: list[RemoteWriteExporter] = []

    async def make(url: str, *, clock: FakeClock | None = None, **kw: Any) -> RemoteWriteExporter:
        kw.setdefault("sending_queue", {"enabled": False})
        kw.setdefault("retry_on_failure", {"enabled": False})
        e = RemoteWriteExporter(make_settings("prometheusremotewrite"), cfg(url, **kw), {Signal.METRICS},
                                clock=clock or FakeClock(), wall=lambda: WALL)
        await e.start(None)  # type: ignore[arg-type]
        made.append(e)
        return e

    yield make
    for e in made:
        await e.shutdown()


# -- config --------------------------------------------------------------------------------------------
def test_registered_and_queue_mapping() -> None:
    assert lookup(Kind.EXPORTER, "prometheusremotewrite") is FACTORY
    c = cfg()
    assert (c.queue.enabled, c.queue.queue_size, c.queue.num_consumers) == (True, 10000, 1)
    assert (c.timeout, c.target_info.enabled, c.export_created_metric.enabled, c.add_metric_suffixes) == (
        5.0, True, False, True)
    c = cfg(remote_write_queue={"queue_size": 5, "num_consumers": 3})
    assert (c.queue.queue_size, c.queue.num_consumers) == (5, 3)
    c = cfg(remote_write_queue={"queue_size": 5}, sending_queue={"queue_size": 7})
    assert c.queue.queue_size == 7
    assert cfg(remote_write_queue={"enabled": False}).queue.enabled is False


@pytest.mark.parametrize(("data", "path", "message"), [
    ({}, "endpoint", "required"),
    ({"endpoint": "prometheus:9090"}, "endpoint", "invalid URL"),
    ({"endpoint": "http://p/w", "wal": {"directory": "/tmp"}}, "wal", "not implemented"),
    ({"endpoint": "http://p/w", "sending_queue": {"batch": {}}}, "sending_queue.batch", "not supported"),
    ({"endpoint": "http://p/w", "remote_write_queue": {"num_consumers": 0}}, "remote_write_queue.num_consumers",
     "positive"),
    ({"endpoint": "http://p/w", "external_labels": {"__x": "y"}}, "external_labels", "invalid label name"),
    ({"endpoint": "http://p/w", "exponential_histograms": "sparse"}, "exponential_histograms", "expected one of"),
])
def test_invalid_config(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, data, "x")
    assert any(e.path == f"x.{path}" and message in e.message for e in info.value.errors), info.value


# -- encoding ----------------------------------------------------------------------------------------------
async def test_request_labels_samples_and_target_info(make_exporter: Callable[..., Any],
                                                      receiver: Receiver) -> None:
    e = await make_exporter(receiver.url, external_labels={"cluster": "c1", "job": "ignored"},
                            headers={"X-Scope-OrgID": "tenant"})
    await e.consume_metrics(request(
        metric("http.requests", "sum", [num(5, {"Route": "/a"})], unit="{request}"),
        metric("lat", "histogram", [hist([0.5, 1], [1, 2, 3], 4.0)], unit="s"),
        metric("rpc", "summary", [summary(4, 2.0, [(0.5, 0.1), (0.9, 0.3)])])))
    headers, wr = receiver.requests[0]
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert headers["User-Agent"] == f"otel-sidecar/{__version__}"
    assert headers["X-Scope-OrgID"] == "tenant"
    names = by_name(wr)
    assert sorted(names) == ["http_requests_total", "lat_seconds_bucket", "lat_seconds_count", "lat_seconds_sum",
                             "rpc", "rpc_count", "rpc_sum", "target_info"]
    for ts in wr.timeseries:
        keys = [lb.name for lb in ts.labels]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert all(lb.value for lb in ts.labels)
    (c,) = names["http_requests_total"]
    assert [lb.name for lb in c.labels] == ["Route", "__name__", "cluster", "instance", "job", "otel_scope_name",
                                            "otel_scope_version"]
    assert label_map(c)["job"] == "shop/api"  # series labels win over external labels
    assert [(s.value, s.timestamp) for s in c.samples] == [(5.0, (T0 + SEC) // 1_000_000)]
    buckets = {label_map(ts)["le"]: ts.samples[0].value for ts in names["lat_seconds_bucket"]}
    assert buckets == {"0.5": 1.0, "1": 3.0, "+Inf": 6.0}
    assert {label_map(ts)["quantile"]: ts.samples[0].value for ts in names["rpc"]} == {"0.5": 0.1, "0.9": 0.3}
    (t,) = names["target_info"]
    assert label_map(t) == {"__name__": "target_info", "cluster": "c1", "host_name": "h1", "instance": "i-1",
                            "job": "shop/api"}


async def test_delta_points_are_sent_cumulative(make_exporter: Callable[..., Any], receiver: Receiver) -> None:
    e = await make_exporter(receiver.url, target_info={"enabled": False})
    for i in range(3):
        await e.consume_metrics(request(metric("c", "sum", [num(2, start=T0 + i * SEC, t=T0 + (i + 1) * SEC)],
                                               temporality=DELTA)))
    values = [by_name(wr)["c_total"][0].samples[0] for _, wr in receiver.requests]
    assert [(s.value, s.timestamp) for s in values] == [(2.0, T0 // 10**6 + 1000), (4.0, T0 // 10**6 + 2000),
                                                        (6.0, T0 // 10**6 + 3000)]
    assert all("target_info" not in by_name(wr) for _, wr in receiver.requests)


def _is_stale(value: float) -> bool:
    return struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


async def test_stale_markers_on_no_recorded_value_and_expiry(make_exporter: Callable[..., Any],
                                                             receiver: Receiver) -> None:
    clock = FakeClock()
    e = await make_exporter(receiver.url, clock=clock, metric_expiration="10m", target_info={"enabled": False})
    await e.consume_metrics(request(metric("c", "sum", [num(1, {"k": "a"}), num(1, {"k": "b"})]),
                                    metric("h", "histogram", [hist([1], [1, 1], 2.0)])))
    await e.consume_metrics(request(metric("c", "sum", [num(0, {"k": "a"}, t=T0 + 2 * SEC,
                                                            flags=NO_RECORDED_VALUE)])))
    (stale_a,) = receiver.requests[1][1].timeseries
    assert label_map(stale_a)["k"] == "a"
    assert _is_stale(stale_a.samples[0].value)
    assert stale_a.samples[0].timestamp == int(WALL * 1000)
    clock.now += 601
    assert await e.flush_stale() == 2
    stale = by_name(receiver.requests[2][1])
    assert sorted(stale) == ["c_total", "h_bucket", "h_count", "h_sum"]
    assert all(_is_stale(ts.samples[0].value) for tss in stale.values() for ts in tss)
    assert await e.flush_stale() == 0
    assert len(receiver.requests) == 3


async def test_native_and_classic_exponential_histograms(make_exporter: Callable[..., Any],
                                                         receiver: Receiver) -> None:
    e = await make_exporter(receiver.url, target_info={"enabled": False}, export_created_metric={"enabled": True},
                            send_metadata=True)
    md = request(metric("lat", "exp", [exp(3, (-1, [2, 0, 0, 0, 1]), zero=1, total=3.5)], unit="s",
                        description="Latency"),
                 metric("reqs", "sum", [num(3)]))
    await e.consume_metrics(md)
    wr = receiver.requests[0][1]
    names = by_name(wr)
    (native,) = names["lat_seconds"]
    (h,) = native.histograms
    assert (h.count_int, h.sum, h.schema, h.zero_count_int, h.zero_threshold) == (4, 3.5, 3, 1, 1e-128)
    assert [(s.offset, s.length) for s in h.positive_spans] == [(0, 1), (3, 1)]
    assert list(h.positive_deltas) == [2, -1]
    assert h.timestamp == (T0 + SEC) // 1_000_000
    assert names["lat_seconds_created"][0].samples[0].value == T0 / 1e9
    assert names["reqs_created"][0].samples[0].value == T0 / 1e9
    assert {(m.metric_family_name, m.type, m.help, m.unit) for m in wr.metadata} == {
        ("lat_seconds", 3, "Latency", "seconds"), ("reqs_total", 1, "", "")}

    classic = await make_exporter(receiver.url, exponential_histograms="classic",
                                  exponential_histogram_buckets=[0.5, 1, 2], target_info={"enabled": False})
    await classic.consume_metrics(md)
    buckets = {label_map(ts)["le"]: ts.samples[0].value for ts in by_name(receiver.requests[1][1])["lat_seconds_bucket"]}
    # scale 3, OTLP index -1 (upper 1.0) x2, index 3 (upper 2**0.5) x1, zero bucket x1
    assert buckets == {"0.5": 1.0, "1": 3.0, "2": 4.0, "+Inf": 4.0}


async def test_native_stale_marker(make_exporter: Callable[..., Any], receiver: Receiver) -> None:
    e = await make_exporter(receiver.url, target_info={"enabled": False})
    await e.consume_metrics(request(metric("lat", "exp", [exp(0, (0, [1]))])))
    await e.consume_metrics(request(metric("lat", "exp", [exp(0, (0, [1]), t=T0 + 2 * SEC,
                                                              flags=NO_RECORDED_VALUE)])))
    (ts,) = receiver.requests[1][1].timeseries
    assert _is_stale(ts.histograms[0].sum)


# -- HTTP status mapping --------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "headers", "error", "retry_after"), [
    (400, {}, PermanentError, None),
    (404, {}, PermanentError, None),
    (429, {"Retry-After": "3"}, ThrottleError, 3.0),
    (429, {}, ThrottleError, 0.0),
    (503, {"Retry-After": "7"}, ThrottleError, 7.0),
    (500, {}, ConsumerError, None),
])
async def test_status_mapping(make_exporter: Callable[..., Any], receiver: Receiver, status: int,
                              headers: dict[str, str], error: type[Exception], retry_after: float | None,
                              telemetry: SelfMetrics) -> None:
    e = await make_exporter(receiver.url)
    receiver.statuses.append((status, headers))
    with pytest.raises(error) as info:
        await e.consume_metrics(request(metric("c", "sum", [num(1)])))
    assert type(info.value) is error
    assert f"HTTP {status}" in str(info.value)
    if retry_after is not None:
        assert isinstance(info.value, ThrottleError) and info.value.retry_after == retry_after
    assert telemetry.value("otelcol_exporter_send_failed_metric_points_total",
                           {"exporter": "prometheusremotewrite"}) == 1


async def test_connection_refused_is_retryable(make_exporter: Callable[..., Any],
                                               free_port: Callable[[], int]) -> None:
    e = await make_exporter(f"http://127.0.0.1:{free_port()}/api/v1/write")
    with pytest.raises(ConsumerError) as info:
        await e.consume_metrics(request(metric("c", "sum", [num(1)])))
    assert not isinstance(info.value, PermanentError)


async def test_queued_retries_then_delivers(make_exporter: Callable[..., Any], receiver: Receiver,
                                            telemetry: SelfMetrics) -> None:
    e = await make_exporter(receiver.url, sending_queue={"enabled": True},
                            retry_on_failure={"enabled": True, "initial_interval": "10ms", "max_interval": "20ms"})
    receiver.statuses.append((503, {}))
    await e.consume_metrics(request(metric("c", "sum", [num(1), num(2, {"a": 1})])))
    await receiver.wait(2)
    deadline = asyncio.get_running_loop().time() + 5
    while telemetry.value("otelcol_exporter_sent_metric_points_total", {"exporter": "prometheusremotewrite"}) != 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert math.isclose(by_name(receiver.requests[1][1])["c_total"][0].samples[0].value, 1.0)
