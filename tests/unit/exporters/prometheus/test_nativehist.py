"""Protobuf exposition decoded back with an independent protobuf decoder (real runtime, upstream field numbers)."""

from __future__ import annotations

from typing import Any

from agent.exporters.prometheus.accumulator import Accumulator
from agent.exporters.prometheus.nativehist import encode_varint, render_protobuf
from agent.exporters.prometheus.render import RenderOptions
from agent.exporters.prometheus.translate import Namer
from agent.pdata import Metrics

from .helpers import SEC, T0, exemplar, exp, hist, metric, num, request, summary
from .pb_schema import parse_delimited

COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = range(5)


def families(md: Metrics, *, timestamps: bool = False) -> dict[str, Any]:
    acc = Accumulator(Namer(), exp_bounds=(1.0, 4.0))
    acc.ingest(md)
    return {f.name: f for f in parse_delimited(render_protobuf(acc.snapshot(), RenderOptions(timestamps, (1.0, 4.0))))}


def labels(m: Any) -> dict[str, str]:
    return {lp.name: lp.value for lp in m.label}


def test_varint() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(300) == b"\xac\x02"
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"


def test_counter_gauge_summary_and_metadata() -> None:
    fams = families(request(
        metric("reqs", "sum", [num(7, {"a": "x"}, exemplars=[exemplar(1.0, T0 + 5)])], description="Requests"),
        metric("temp", "gauge", [num(21.5)], unit="Cel"),
        metric("rpc", "summary", [summary(3, 1.5, [(0.5, 0.25), (0.9, 1.0)])], unit="s"),
        metric("odd", "gauge", [num(1)], metadata={"prometheus.type": "unknown"})), timestamps=True)
    assert set(fams) == {"target_info", "reqs_total", "temp_celsius", "rpc_seconds", "odd"}
    c = fams["reqs_total"]
    assert (c.type, c.help) == (COUNTER, "Requests")
    (m,) = c.metric
    assert labels(m) == {"a": "x", "instance": "i-1", "job": "shop/api", "otel_scope_name": "lib",
                         "otel_scope_version": "1.0"}
    assert m.counter.value == 7.0
    assert (m.counter.created_timestamp.seconds, m.counter.created_timestamp.nanos) == (T0 // SEC, 0)
    assert {lp.name: lp.value for lp in m.counter.exemplar.label}["trace_id"] == f"{1:032x}"
    assert m.counter.exemplar.timestamp.nanos == 5
    assert m.timestamp_ms == (T0 + SEC) // 1_000_000
    g = fams["temp_celsius"]
    assert (g.type, g.unit, g.metric[0].gauge.value) == (GAUGE, "celsius", 21.5)
    s = fams["rpc_seconds"].metric[0].summary
    assert (s.sample_count, s.sample_sum) == (3, 1.5)
    assert [(q.quantile, q.value) for q in s.quantile] == [(0.5, 0.25), (0.9, 1.0)]
    assert fams["odd"].type == UNTYPED and fams["odd"].metric[0].untyped.value == 1.0
    (t,) = fams["target_info"].metric
    assert (fams["target_info"].type, labels(t)["host_name"], t.gauge.value) == (GAUGE, "h1", 1.0)


def test_classic_histogram() -> None:
    fams = families(request(metric("lat", "histogram", [hist([0.5, 1], [1, 2, 3], 9.0,
                                                             exemplars=[exemplar(0.7, T0)])], unit="s")))
    h = fams["lat_seconds"].metric[0].histogram
    assert fams["lat_seconds"].type == HISTOGRAM
    assert (h.sample_count, h.sample_sum) == (6, 9.0)
    assert [(b.upper_bound, b.cumulative_count) for b in h.bucket] == [(0.5, 1), (1.0, 3)]
    assert h.bucket[1].exemplar.value == 0.7
    assert not h.HasField("schema") and len(h.positive_span) == 0


def test_native_histogram_from_exponential() -> None:
    fams = families(request(metric("e", "exp", [
        exp(2, (-2, [3, 0, 0, 0, 5, 1]), zero=2, negative=(0, [4]), total=12.5, attrs={"k": "pos"}),
        exp(12, (0, []), zero=0, total=0.0, zero_threshold=0.001, attrs={"k": "empty"}),
    ])))
    by = {labels(m)["k"]: m.histogram for m in fams["e"].metric}
    h = by["pos"]
    assert (h.schema, h.zero_count, h.zero_threshold, h.sample_count, h.sample_sum) == (2, 2, 1e-128, 15, 12.5)
    # OTLP index i -> native key i + 1: keys -1 (3), 3 (5), 4 (1)
    assert [(s.offset, s.length) for s in h.positive_span] == [(-1, 1), (3, 2)]
    assert list(h.positive_delta) == [3, 2, -4]
    assert [(s.offset, s.length) for s in h.negative_span] == [(1, 1)]
    assert list(h.negative_delta) == [4]
    # Classic buckets over the configured bounds ride along.
    assert [(b.upper_bound, b.cumulative_count) for b in h.bucket] == [(1.0, 3 + 2 + 4), (4.0, 15)]
    assert h.created_timestamp.seconds == T0 // SEC
    empty = by["empty"]
    assert (empty.schema, empty.zero_threshold) == (8, 0.001)  # scale 12 capped at 8
    assert [(s.offset, s.length) for s in empty.positive_span] == [(0, 0)]  # the no-op span
