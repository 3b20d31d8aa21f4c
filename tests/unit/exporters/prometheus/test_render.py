"""Exposition text (golden), checked by prometheus_client's parsers and by ``promtool check metrics``."""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from agent.exporters.prometheus.accumulator import Accumulator
from agent.exporters.prometheus.render import Format, RenderOptions, accepts_gzip, negotiate, render, render_chunks
from agent.exporters.prometheus.translate import Namer
from agent.pdata import Metrics

from .helpers import DELTA, SEC, T0, exemplar, exp, hist, metric, num, request, summary

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def golden_request() -> Metrics:
    return request(
        metric("http.server.requests", "sum",
               [num(3, {"http.route": '/a"b\\c\nd'}, exemplars=[exemplar(1.0, T0 + SEC // 2)]),
                num(4.5, {"http.route": "/"})],
               unit="{request}", description='Requests "served".\nSecond line \\ done'),
        metric("http.server.duration", "histogram", [hist([0.1, 1], [1, 2, 3], 4.25, exemplars=[exemplar(0.5, T0 + 1)])],
               unit="s"),
        metric("queue.depth", "sum", [num(7)], monotonic=False),
        metric("rpc.latency", "summary", [summary(10, 2.5, [(0.5, 0.2), (0.99, math.inf)])], unit="ms"),
        metric("temperature", "gauge", [num(math.nan, {"ünï": "✓"})], unit="Cel"),
        scope_version="")


LB = 'instance="i-1",job="shop/api",otel_scope_name="lib"'
ROUTE = 'http_route="/a\\"b\\\\c\\nd"'
GOLDEN_TEXT = f"""\
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{{host_name="h1",instance="i-1",job="shop/api"}} 1
# TYPE http_server_duration_seconds histogram
http_server_duration_seconds_bucket{{{LB},le="0.1"}} 1
http_server_duration_seconds_bucket{{{LB},le="1"}} 3
http_server_duration_seconds_bucket{{{LB},le="+Inf"}} 6
http_server_duration_seconds_sum{{{LB}}} 4.25
http_server_duration_seconds_count{{{LB}}} 6
# HELP http_server_requests_total Requests "served".\\nSecond line \\\\ done
# TYPE http_server_requests_total counter
http_server_requests_total{{{ROUTE},{LB}}} 3
http_server_requests_total{{http_route="/",{LB}}} 4.5
# TYPE queue_depth gauge
queue_depth{{{LB}}} 7
# TYPE rpc_latency_milliseconds summary
rpc_latency_milliseconds{{{LB},quantile="0.5"}} 0.2
rpc_latency_milliseconds{{{LB},quantile="0.99"}} +Inf
rpc_latency_milliseconds_sum{{{LB}}} 2.5
rpc_latency_milliseconds_count{{{LB}}} 10
# TYPE temperature_celsius gauge
temperature_celsius{{_n_="✓",{LB}}} NaN
"""

EX = '# {trace_id="00000000000000000000000000000001",span_id="0000000000000002"}'
GOLDEN_OM = f"""\
# TYPE target info
# HELP target Target metadata
target_info{{host_name="h1",instance="i-1",job="shop/api"}} 1
# TYPE http_server_duration_seconds histogram
# UNIT http_server_duration_seconds seconds
http_server_duration_seconds_bucket{{{LB},le="0.1"}} 1
http_server_duration_seconds_bucket{{{LB},le="1.0"}} 3 {EX} 0.5 1700000000.0
http_server_duration_seconds_bucket{{{LB},le="+Inf"}} 6
http_server_duration_seconds_sum{{{LB}}} 4.25
http_server_duration_seconds_count{{{LB}}} 6
http_server_duration_seconds_created{{{LB}}} 1700000000.0
# TYPE http_server_requests counter
# HELP http_server_requests Requests \\"served\\".\\nSecond line \\\\ done
http_server_requests_total{{{ROUTE},{LB}}} 3 {EX} 1.0 1700000000.5
http_server_requests_created{{{ROUTE},{LB}}} 1700000000.0
http_server_requests_total{{http_route="/",{LB}}} 4.5
http_server_requests_created{{http_route="/",{LB}}} 1700000000.0
# TYPE queue_depth gauge
queue_depth{{{LB}}} 7
# TYPE rpc_latency_milliseconds summary
# UNIT rpc_latency_milliseconds milliseconds
rpc_latency_milliseconds{{{LB},quantile="0.5"}} 0.2
rpc_latency_milliseconds{{{LB},quantile="0.99"}} +Inf
rpc_latency_milliseconds_sum{{{LB}}} 2.5
rpc_latency_milliseconds_count{{{LB}}} 10
rpc_latency_milliseconds_created{{{LB}}} 1700000000.0
# TYPE temperature_celsius gauge
# UNIT temperature_celsius celsius
temperature_celsius{{_n_="✓",{LB}}} NaN
# EOF
"""


def rendered(md: Metrics, fmt: Format, *, timestamps: bool = False, **kw: Any) -> str:
    kw.setdefault("exp_bounds", (0.5, 1.0, 5.0))
    acc = Accumulator(Namer(), **kw)
    acc.ingest(md)
    return render(acc.snapshot(), fmt, RenderOptions(timestamps, acc.exp_bounds)).decode()


def promtool(text: str) -> None:
    """``promtool check metrics``: parse errors fail; lint advice (help text, unit names) is allowed."""
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode in (0, 3), out
    assert "error" not in out.lower(), out


def unique_samples(families: Any) -> None:
    seen = set()
    for fam in families:
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in seen, f"duplicate sample {key}"
            seen.add(key)


def test_golden_text() -> None:
    assert rendered(golden_request(), Format.TEXT) == GOLDEN_TEXT


def test_golden_openmetrics() -> None:
    assert rendered(golden_request(), Format.OPENMETRICS) == GOLDEN_OM


def test_text_parses_back() -> None:
    fams = {f.name: f for f in parse_text(GOLDEN_TEXT)}
    samples = {s.labels.get("http_route"): s.value for s in fams["http_server_requests"].samples}
    assert samples == {'/a"b\\c\nd': 3.0, "/": 4.5}
    assert fams["http_server_requests"].documentation == 'Requests "served".\nSecond line \\ done'
    assert fams["http_server_duration_seconds"].type == "histogram"
    assert math.isnan(fams["temperature_celsius"].samples[0].value)
    assert fams["temperature_celsius"].samples[0].labels["_n_"] == "✓"
    unique_samples(parse_text(GOLDEN_TEXT))


def test_openmetrics_parses_back_with_exemplars_and_created() -> None:
    fams = {f.name: f for f in parse_om(GOLDEN_OM)}
    counter = fams["http_server_requests"]
    assert counter.type == "counter" and counter.unit == ""
    (with_ex,) = [s for s in counter.samples if s.exemplar is not None]
    assert with_ex.exemplar.labels == {"trace_id": f"{1:032x}", "span_id": f"{2:016x}"}
    assert float(with_ex.exemplar.timestamp) == pytest.approx(1_700_000_000.5)
    assert {s.name for s in counter.samples} == {"http_server_requests_total", "http_server_requests_created"}
    assert fams["http_server_duration_seconds"].unit == "seconds"
    assert fams["target"].type == "info"
    unique_samples(parse_om(GOLDEN_OM))


def test_promtool_accepts_text_output() -> None:
    promtool(GOLDEN_TEXT)
    promtool(rendered(golden_request(), Format.TEXT, timestamps=True))


def test_timestamps() -> None:
    text = rendered(request(metric("g", "gauge", [num(1.0, t=T0 + 1_234_567_891)])), Format.TEXT, timestamps=True)
    assert text.endswith(f'g{{{LB},otel_scope_version="1.0"}} 1.0 1700000001234\n')
    om = rendered(request(metric("g", "gauge", [num(1.0, t=T0 + 1_234_567_891)])), Format.OPENMETRICS,
                  timestamps=True)
    assert " 1.0 1700000001.2345679\n# EOF\n" in om
    list(parse_om(om))


def test_exponential_histograms_as_classic_buckets() -> None:
    md = request(metric("e", "exp", [exp(0, (-2, [1, 2, 3, 4]), zero=5, total=30.0)], unit="s"))
    text = rendered(md, Format.TEXT)
    buckets = {s.labels["le"]: s.value for f in parse_text(text) for s in f.samples if s.name.endswith("_bucket")}
    # scale 0, offset -2: (0.25,0.5] 1, (0.5,1] 2, (1,2] 3, (2,4] 4; zero bucket 5 -> le 0.5
    assert buckets == {"0.5": 6, "1": 8, "5": 15, "+Inf": 15}
    promtool(text)
    list(parse_om(rendered(md, Format.OPENMETRICS)))


def test_empty_and_unlabelled() -> None:
    assert rendered(request(), Format.TEXT) == ""
    assert rendered(request(), Format.OPENMETRICS) == "# EOF\n"
    text = rendered(request(metric("g", "gauge", [num(2)]), metric("h", "histogram", [hist([], [], None)]),
                            resource={}, scope="", scope_version=""), Format.TEXT)
    assert "g 2\n" in text and 'h_bucket{le="+Inf"} 0\n' in text and "h_count 0\n" in text
    assert "target_info" not in text
    promtool(text)


def test_large_exposition_is_chunked_and_valid() -> None:
    md = request(
        metric("c", "sum", [num(i, {"i": i}) for i in range(2500)]),
        metric("h", "histogram", [hist([1, 2], [i, 1, 1], attrs={"i": i}, start=T0 + i, t=T0 + 10 * SEC + i)
                                  for i in range(1500)], temporality=DELTA))
    acc = Accumulator(Namer())
    acc.ingest(md)
    chunks = list(render_chunks(acc.snapshot(), Format.OPENMETRICS, RenderOptions(), chunk=700))
    assert len(chunks) > 5
    text = "".join(chunks)
    fams = list(parse_om(text))
    assert sum(len(f.samples) for f in fams) == 2500 * 2 + 1500 * 4 + 1  # OpenMetrics: no _count without _sum
    unique_samples(fams)
    promtool("".join(render_chunks(acc.snapshot(), Format.TEXT, RenderOptions(), chunk=700)))


@pytest.mark.parametrize(("accept", "om_enabled", "expected"), [
    (None, True, Format.TEXT),
    ("", True, Format.TEXT),
    ("*/*", True, Format.TEXT),
    ("text/plain;version=0.0.4", True, Format.TEXT),
    # Prometheus 2.x default
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True, Format.OPENMETRICS),
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False, Format.TEXT),
    ("application/openmetrics-text;version=0.0.1", True, Format.OPENMETRICS_0_0_1),
    # Prometheus 3 default, with escaping and text 1.0.0
    ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;"
     "version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,"
     "*/*;q=0.1", True, Format.OPENMETRICS),
    # native histograms enabled
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,"
     "text/plain;version=0.0.4;q=0.3,*/*;q=0.2", False, Format.PROTOBUF),
    # q-values beat order; q=0 refuses
    ("text/plain;q=0.2, application/openmetrics-text; version=1.0.0; q=0.9", True, Format.OPENMETRICS),
    ("application/openmetrics-text;q=0,text/plain;q=0.1", True, Format.TEXT),
    ("application/vnd.google.protobuf;proto=other;encoding=delimited", True, Format.TEXT),
    ("application/json", True, Format.TEXT),
])
def test_negotiation(accept: str | None, om_enabled: bool, expected: Format) -> None:
    assert negotiate(accept, openmetrics=om_enabled) is expected


@pytest.mark.parametrize(("header", "expected"), [
    (None, False), ("gzip", True), ("deflate, gzip;q=1.0, *;q=0.5", True), ("gzip;q=0", False),
    ("identity", False), ("*", True), ("br", False),
])
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected
