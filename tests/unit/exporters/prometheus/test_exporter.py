"""The ``prometheus`` exporter component: config, lifecycle, /metrics over HTTP, expiry timer, self-metrics."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from agent.component import Capabilities, Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.exporters.prometheus import FACTORY, Config, PrometheusExporter
from agent.exporters.prometheus.exporter import expiry_interval
from agent.exporters.prometheus.server import CACHE_MAX_BYTES
from agent.telemetry.metrics import SelfMetrics

from .helpers import SEC, T0, UNSPECIFIED, exp, metric, num, request
from .pb_schema import parse_delimited

PROTOBUF_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
                   "q=0.7,text/plain;version=0.0.4;q=0.3")
OM_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def config(**kw: Any) -> Config:
    kw.setdefault("endpoint", "127.0.0.1:0")
    return decode(Config, kw, "exporters.prometheus")


@pytest.fixture
async def make_exporter(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    made: list[PrometheusExporter] = []

    async def make(**kw: Any) -> PrometheusExporter:
        exp_ = FACTORY.create(make_settings("prometheus"), config(**kw), frozenset({Signal.METRICS}))
        await exp_.start(None)  # type: ignore[arg-type]
        made.append(exp_)
        return exp_

    yield make
    for e in made:
        await e.shutdown()


async def scrape(exporter: PrometheusExporter, accept: str | None = None, encoding: str | None = None,
                 path: str = "/metrics") -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if accept is not None:
        headers["Accept"] = accept
    headers["Accept-Encoding"] = encoding or "identity"
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.get(
            f"http://127.0.0.1:{exporter.server.port}{path}", headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


# -- config ----------------------------------------------------------------------------------------
def test_registered_and_defaults() -> None:
    assert lookup(Kind.EXPORTER, "prometheus") is FACTORY
    assert FACTORY.signals == frozenset({Signal.METRICS})
    c = config()
    assert (c.namespace, c.send_timestamps, c.metric_expiration, c.enable_open_metrics, c.add_metric_suffixes,
            c.without_scope_info, c.max_series, c.max_series_per_metric) == ("", False, 300.0, False, True, False,
                                                                           20000, 2000)
    assert c.resource_to_telemetry_conversion.enabled is False
    assert c.with_suffixes is True
    assert config(add_metric_suffixes=False).with_suffixes is False
    assert config(translation_strategy="UnderscoreEscapingWithSuffixes", add_metric_suffixes=False).with_suffixes
    assert config(metric_expiration="1m30s").metric_expiration == 90.0


@pytest.mark.parametrize(("data", "path", "message"), [
    ({}, "exporters.prometheus.endpoint", "required"),
    ({"endpoint": "localhost"}, "exporters.prometheus.endpoint", "no port"),
    ({"endpoint": ":1", "translation_strategy": "NoTranslation"}, "exporters.prometheus.translation_strategy",
     "not supported"),
    ({"endpoint": ":1", "translation_strategy": "Bogus"}, "exporters.prometheus.translation_strategy",
     "not a translation strategy"),
    ({"endpoint": ":1", "max_series": -1}, "exporters.prometheus.max_series", "negative"),
    ({"endpoint": ":1", "exponential_histogram_buckets": [1, 1]},
     "exporters.prometheus.exponential_histogram_buckets", "increasing"),
    ({"endpoint": ":1", "metric_expiration": "5 minutes"}, "exporters.prometheus.metric_expiration", "duration"),
    ({"endpoint": ":1", "enable_openmetrics": True}, "exporters.prometheus.enable_openmetrics", "unknown key"),
])
def test_invalid_config(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, data, "exporters.prometheus")
    assert any(e.path == path and message in e.message for e in info.value.errors), info.value


def test_collector_config_block_decodes() -> None:
    c = decode(Config, {
        "endpoint": "0.0.0.0:8889", "namespace": "app", "const_labels": {"label1": "value1"},
        "send_timestamps": True, "metric_expiration": "180m", "enable_open_metrics": True,
        "add_metric_suffixes": False, "resource_to_telemetry_conversion": {"enabled": True},
        "without_scope_info": True, "sending_queue": {"enabled": True, "queue_size": 10},
        "translation_strategy": "UnderscoreEscapingWithoutSuffixes",
    }, "exporters.prometheus")
    assert (c.metric_expiration, c.const_labels, c.with_suffixes) == (10800.0, {"label1": "value1"}, False)


def test_expiry_interval() -> None:
    assert expiry_interval(300) == 15.0
    assert expiry_interval(1.0) == 0.1
    assert expiry_interval(0.001) == 0.01


# -- lifecycle --------------------------------------------------------------------------------------
async def test_shutdown_without_start_and_twice(make_settings: Callable[..., Settings]) -> None:
    e = PrometheusExporter(make_settings("prometheus"), config())
    assert e.capabilities() == Capabilities(mutates_data=False)
    await e.shutdown()
    await e.start(None)  # type: ignore[arg-type]
    await e.shutdown()
    await e.shutdown()


async def test_port_in_use_fails_start(make_exporter: Callable[..., Any],
                                       make_settings: Callable[..., Settings]) -> None:
    first = await make_exporter()
    second = PrometheusExporter(make_settings("prometheus/2"), config(endpoint=f"127.0.0.1:{first.server.port}"))
    with pytest.raises(RuntimeError, match="address already in use"):
        await second.start(None)  # type: ignore[arg-type]
    await second.shutdown()


# -- serving ------------------------------------------------------------------------------------------
async def test_scrape_text_default(make_exporter: Callable[..., Any], telemetry: SelfMetrics) -> None:
    e = await make_exporter()
    await e.consume_metrics(request(metric("reqs", "sum", [num(5, {"k": "a"}), num(7, {"k": "b"})])))
    status, headers, body = await scrape(e, OM_ACCEPT)  # OpenMetrics is off by default
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = {f.name: f for f in parse_text(body.decode())}
    assert sorted(s.value for s in fams["reqs"].samples) == [5.0, 7.0]
    assert telemetry.value("otelcol_exporter_sent_metric_points_total", {"exporter": "prometheus"}) == 2
    assert telemetry.value("otelcol_exporter_prometheus_series", {"exporter": "prometheus"}) == 2
    status, _, _ = await scrape(e, path="/other")
    assert status == 404


async def test_openmetrics_and_gzip(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter(enable_open_metrics=True)
    await e.consume_metrics(request(metric("reqs", "sum", [num(5)])))
    status, headers, body = await scrape(e, OM_ACCEPT, "gzip")
    assert status == 200
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    assert [s.name for f in parse_om(text) for s in f.samples if f.name == "reqs"] == ["reqs_total", "reqs_created"]


async def test_protobuf_with_native_histograms(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter()
    await e.consume_metrics(request(metric("lat", "exp", [exp(3, (0, [1, 2]))], unit="s"),
                                    metric("reqs", "sum", [num(5)])))
    status, headers, body = await scrape(e, PROTOBUF_ACCEPT)
    assert status == 200
    assert headers["Content-Type"].startswith("application/vnd.google.protobuf; proto=io.prometheus.client.Metric")
    fams = {f.name: f for f in parse_delimited(body)}
    assert fams["lat_seconds"].metric[0].histogram.schema == 3
    assert fams["reqs_total"].metric[0].counter.value == 5.0


async def test_body_cache_follows_changes(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter()
    await e.consume_metrics(request(metric("g", "gauge", [num(1.0)])))
    first = (await scrape(e))[2]
    assert (await scrape(e))[2] == first
    assert e.server._cache is not None
    await e.consume_metrics(request(metric("g", "gauge", [num(2.0, t=T0 + 2 * SEC)])))
    assert b"} 2.0\n" in (await scrape(e))[2]
    assert CACHE_MAX_BYTES >= 1 << 20


async def test_large_scrape_streams_while_ingesting(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter(max_series_per_metric=0, max_series=0)
    n = 30_000
    await e.consume_metrics(request(metric("c", "sum", [num(i, {"i": i}) for i in range(n)])))

    rounds = 0

    async def keep_ingesting() -> None:
        nonlocal rounds
        while True:
            await e.consume_metrics(request(metric("c", "sum", [num(rounds, {"i": i}, t=T0 + (2 + rounds) * SEC)
                                                               for i in range(0, n, 100)])))
            rounds += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(keep_ingesting())
    try:
        status, _, body = await scrape(e, None, "gzip")
    finally:
        task.cancel()
    assert status == 200
    assert rounds > 0  # the loop kept ingesting while the scrape was rendered
    fams = {f.name: f for f in parse_text(gzip.decompress(body).decode())}
    assert len(fams["c"].samples) == n


async def test_dropped_points_are_counted(make_exporter: Callable[..., Any], telemetry: SelfMetrics) -> None:
    e = await make_exporter()
    await e.consume_metrics(request(metric("c", "sum", [num(1)], temporality=UNSPECIFIED)))
    assert telemetry.value("otelcol_exporter_send_failed_metric_points_total", {"exporter": "prometheus"}) == 1
    assert telemetry.value("otelcol_exporter_prometheus_dropped_points_total",
                           {"exporter": "prometheus", "reason": "unspecified_temporality"}) == 1


async def test_caps_count_refused_series(make_exporter: Callable[..., Any], telemetry: SelfMetrics) -> None:
    e = await make_exporter(max_series_per_metric=2)
    await e.consume_metrics(request(metric("c", "sum", [num(1, {"i": i}) for i in range(5)])))
    assert telemetry.value("otelcol_exporter_prometheus_refused_series_total", {"exporter": "prometheus"}) == 3
    body = (await scrape(e))[2].decode()
    assert 'otel_metric_overflow="true"} 3\n' in body


async def test_expiry_runs_on_a_timer_without_scrapes(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter(metric_expiration="200ms")
    await e.consume_metrics(request(metric("g", "gauge", [num(1.0)])))
    assert e.accumulator.count == 1
    deadline = asyncio.get_running_loop().time() + 5
    while e.accumulator.count:
        assert asyncio.get_running_loop().time() < deadline, "series never expired"
        await asyncio.sleep(0.02)
    assert (await scrape(e))[2] == b""


def test_example_config_builds() -> None:
    from pathlib import Path

    from agent.config.loader import load
    from agent.config.model import build

    path = Path(__file__).resolve().parents[4] / "collector-config" / "examples" / "prometheus.yaml"
    cfg = build(load([str(path)], env={}))
    assert {str(e) for e in cfg.exporters} == {"prometheus", "prometheusremotewrite"}


async def test_head_and_aborted_scrapes(make_exporter: Callable[..., Any]) -> None:
    e = await make_exporter(max_series_per_metric=0)
    await e.consume_metrics(request(metric("c", "sum", [num(i, {"i": i}) for i in range(5000)])))
    url = f"http://127.0.0.1:{e.server.port}/metrics"
    async with aiohttp.ClientSession() as session:
        async with session.head(url, headers={"Accept-Encoding": "gzip"}) as r:
            assert (r.status, r.headers["Content-Type"], await r.read()) == (
                200, "text/plain; version=0.0.4; charset=utf-8", b"")
        async with session.get(url) as r:  # the client goes away mid-body
            await r.content.read(10)
        async with session.get(url) as r:
            assert r.status == 200
            assert len(list(parse_text(await r.text()))[-1].samples) == 5000
