"""Folding rules of the series store: temporality, resets, deltas, expiry, caps, conflicts."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from agent.exporters.prometheus.accumulator import Accumulator, Family, Kind, Series, attr_key
from agent.exporters.prometheus.translate import Namer
from agent.exporters.prometheus.values import ExpValue, HistValue
from agent.pdata import proto
from agent.testing import FakeClock

from .helpers import (
    CUMULATIVE,
    DELTA,
    NO_RECORDED_VALUE,
    SEC,
    T0,
    UNSPECIFIED,
    exemplar,
    exp,
    hist,
    metric,
    num,
    request,
    summary,
    wire,
)

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def make(clock: FakeClock | None = None, **kw: Any) -> Accumulator:
    kw.setdefault("exp_bounds", BOUNDS)
    return Accumulator(Namer(), clock=clock or FakeClock(), **kw)


def family(acc: Accumulator, name: str) -> Family:
    fams = [f for f in acc.families.values() if f.name == name or f.base == name]
    assert fams, f"no family {name!r}; have {sorted(acc.families)}"
    return fams[0]


def series(acc: Accumulator, name: str, **labels: str) -> Series:
    """The one series of ``name`` whose labels include ``labels``."""
    found = [s for s in family(acc, name).series.values() if labels.items() <= dict(s.labels).items()]
    assert len(found) == 1, f"{len(found)} series of {name} match {labels}"
    return found[0]


def value(acc: Accumulator, name: str, **labels: str) -> Any:
    return series(acc, name, **labels).value


def dropped(acc: Accumulator, reason: str) -> float:
    counter: Any = acc.on_dropped[reason]
    return float(counter.value)


# -- identity and labels -----------------------------------------------------------------------
def test_labels_from_attributes_resource_and_scope() -> None:
    acc = make()
    acc.ingest(request(metric("reqs", "sum", [num(3, {"http.method": "GET", "code": 200})]),
                       scope_attrs={"lib.feature": True, "name": "dropped"}, schema_url="https://s/1"))
    s = series(acc, "reqs_total")
    assert dict(s.labels) == {
        "http_method": "GET", "code": "200", "job": "shop/api", "instance": "i-1",
        "otel_scope_name": "lib", "otel_scope_version": "1.0", "otel_scope_schema_url": "https://s/1",
        "otel_scope_lib_feature": "true",
    }
    assert s.lb.startswith('{code="200",http_method="GET",instance="i-1",job="shop/api",otel_scope_lib_feature=')
    assert s.value == 3


def test_without_scope_info_const_labels_and_resource_conversion() -> None:
    acc = make(scope_info=False, const_labels={"env": "prod", "job": "const"}, resource_to_labels=True)
    acc.ingest(request(metric("g", "gauge", [num(1.5)])))
    assert dict(series(acc, "g").labels) == {
        "env": "prod", "host_name": "h1", "instance": "i-1", "service_instance_id": "i-1",
        "service_name": "api", "service_namespace": "shop", "job": "shop/api;const",  # ties: input order
    }


def test_target_info_per_job_instance_lives_with_its_series() -> None:
    clock = FakeClock()
    acc = make(clock, expiration=60)
    acc.ingest(request(metric("g", "gauge", [num(1.0)])))
    acc.ingest(request(metric("g", "gauge", [num(2.0)]), resource={"service.name": "other"}))
    (target,) = acc.targets  # "other" has no attribute besides service.name: no target_info
    assert dict(target.labels) == {"host_name": "h1", "instance": "i-1", "job": "shop/api"}
    clock.now += 61
    assert acc.expire() == 2
    assert acc.targets == []
    assert acc.families == {}


def test_streams_mapping_to_the_same_labels_share_one_series() -> None:
    acc = make()
    acc.ingest(request(metric("g", "gauge", [num(1.0, {"a.b": "x"}), num(2.0, {"a_b": "x"}, t=T0 + 2 * SEC)])))
    assert value(acc, "g", a_b="x") == 2.0
    assert acc.count == 1


def test_attr_key_matches_attribute_bytes() -> None:
    rng = random.Random(3)
    for _ in range(200):
        p = proto.NumberDataPoint(time_unix_nano=rng.getrandbits(64), as_double=rng.random(),
                                  start_time_unix_nano=rng.getrandbits(63), flags=rng.getrandbits(3))
        for i in range(rng.randrange(0, 6)):
            kv = p.attributes.add()
            kv.key = f"k{i}" * rng.randrange(1, 90)
            kv.value.string_value = "v" * rng.randrange(0, 300)
        for _ in range(rng.randrange(0, 3)):
            p.exemplars.add(as_double=1.0, trace_id=rng.randbytes(16))
        expected = [kv.SerializeToString() for kv in p.attributes]
        key = attr_key(p.SerializeToString(), 0x3A)
        assert key == (b"\x00".join(expected) if len(expected) != 1 else expected[0])


# -- cumulative ----------------------------------------------------------------------------------
def test_cumulative_last_value_wins_and_older_points_are_ignored() -> None:
    acc = make()
    acc.ingest(request(metric("c", "sum", [num(5, t=T0 + 2 * SEC)])))
    acc.ingest(request(metric("c", "sum", [num(3, t=T0 + SEC)])))  # older: ignored
    acc.ingest(request(metric("c", "sum", [num(4, t=T0 + 2 * SEC)])))  # same time: ignored
    assert value(acc, "c_total") == 5
    assert dropped(acc, "out_of_order") == 2
    acc.ingest(request(metric("c", "sum", [num(9, t=T0 + 3 * SEC)])))
    assert value(acc, "c_total") == 9


def test_cumulative_new_start_is_a_reset() -> None:
    acc = make()
    acc.ingest(request(metric("c", "sum", [num(50, t=T0 + 10 * SEC)])))
    acc.ingest(request(metric("c", "sum", [num(2, start=T0 + 20 * SEC, t=T0 + 21 * SEC)])))
    s = series(acc, "c_total")
    assert (s.value, s.start) == (2, T0 + 20 * SEC)


def test_gauge_summary_and_cumulative_histogram() -> None:
    acc = make()
    acc.ingest(request(metric("g", "gauge", [num(1.5)]),
                       metric("lat", "histogram", [hist([1, 2], [1, 2, 3], 9.0)], unit="s"),
                       metric("rpc", "summary", [summary(4, 2.0, [(0.99, 9.0), (0.5, 1.0)])])))
    assert value(acc, "g") == 1.5
    h = value(acc, "lat_seconds")
    assert isinstance(h, HistValue)
    assert (h.bounds, h.counts, h.count, h.sum) == ((1.0, 2.0), (1, 2, 3), 6, 9.0)
    assert value(acc, "rpc").quantiles == ((0.5, 1.0), (0.99, 9.0))
    assert family(acc, "rpc").kind is Kind.SUMMARY


# -- delta -----------------------------------------------------------------------------------------
def test_delta_sums_accumulate_with_a_stable_start() -> None:
    acc = make()
    for i in range(5):  # contiguous windows [T0+i, T0+i+1)
        acc.ingest(request(metric("c", "sum", [num(2, start=T0 + i * SEC, t=T0 + (i + 1) * SEC)],
                                  temporality=DELTA)))
    s = series(acc, "c_total")
    assert (s.value, s.start, s.time) == (10, T0, T0 + 5 * SEC)


def test_delta_gaps_are_accumulated_and_repeats_dropped() -> None:
    acc = make()
    acc.ingest(request(metric("c", "sum", [num(1, start=T0, t=T0 + SEC)], temporality=DELTA)))
    # The SDK skips intervals without measurements: the next window starts later. Not a reset.
    acc.ingest(request(metric("c", "sum", [num(4, start=T0 + 5 * SEC, t=T0 + 6 * SEC)], temporality=DELTA)))
    # A retried (repeated) request, and a window overlapping what was folded: dropped.
    acc.ingest(request(metric("c", "sum", [num(4, start=T0 + 5 * SEC, t=T0 + 6 * SEC)], temporality=DELTA)))
    acc.ingest(request(metric("c", "sum", [num(7, start=T0 + 3 * SEC, t=T0 + 7 * SEC)], temporality=DELTA)))
    assert value(acc, "c_total") == 5
    assert dropped(acc, "out_of_order") == 2


def test_delta_non_monotonic_sum_is_a_running_gauge() -> None:
    acc = make()
    for i, d in enumerate([5, -2, 3, -6]):
        acc.ingest(request(metric("queue.items", "sum", [num(d, start=T0 + i * SEC, t=T0 + (i + 1) * SEC)],
                                  temporality=DELTA, monotonic=False)))
    fam = family(acc, "queue_items")
    assert fam.kind is Kind.GAUGE
    assert value(acc, "queue_items") == 0


def test_unspecified_temporality_is_dropped_and_counted() -> None:
    acc = make()
    folded, lost = acc.ingest(request(metric("c", "sum", [num(1), num(2, {"a": 1})], temporality=UNSPECIFIED)))
    assert (folded, lost) == (0, 2)
    assert dropped(acc, "unspecified_temporality") == 2
    assert acc.families == {}


def test_delta_histograms_accumulate_and_a_layout_change_restarts() -> None:
    acc = make()
    for i in range(3):
        acc.ingest(request(metric("lat", "histogram", [hist([1, 2], [1, 0, 2], 3.5, start=T0 + i * SEC,
                                                             t=T0 + (i + 1) * SEC)], temporality=DELTA)))
    h = value(acc, "lat")
    assert (h.counts, h.count, h.sum) == ((3, 0, 6), 9, 10.5)
    acc.ingest(request(metric("lat", "histogram", [hist([5], [1, 1], 2.0, start=T0 + 3 * SEC, t=T0 + 4 * SEC)],
                              temporality=DELTA)))
    s = series(acc, "lat")
    assert (s.value.bounds, s.value.counts, s.start) == ((5.0,), (1, 1), T0 + 3 * SEC)


def test_delta_exponential_histograms_merge_across_scales() -> None:
    acc = make()
    acc.ingest(request(metric("e", "exp", [exp(3, (0, [1, 1, 1, 1]), total=4.0, start=T0, t=T0 + SEC)],
                              temporality=DELTA)))
    acc.ingest(request(metric("e", "exp", [exp(2, (1, [2]), zero=1, total=3.0, start=T0 + SEC, t=T0 + 2 * SEC)],
                              temporality=DELTA)))
    v = value(acc, "e")
    assert isinstance(v, ExpValue)
    # scale 3 indices 0..3 -> scale 2 indices 0,0,1,1 ; plus 2 at index 1
    assert (v.scale, v.positive, v.zero_count, v.count, v.sum) == (2, (0, (2, 4)), 1, 7, 7.0)


# -- exponential histogram validation -------------------------------------------------------------
def test_exponential_scale_capped_at_8_and_below_minus_4_dropped() -> None:
    acc = make()
    acc.ingest(request(metric("e", "exp", [exp(10, (0, [1, 1, 1, 1, 1]))])))
    v = value(acc, "e")
    assert (v.scale, v.positive) == (8, (0, (4, 1)))  # indices 0..3 -> 0, 4 -> 1
    lost = acc.ingest(request(metric("f", "exp", [exp(-5, (0, [1]))]), metric("g", "exp", [exp(0, (0, [1]),
                                                                                          total=None)])))
    assert lost == (0, 2)
    assert dropped(acc, "invalid") == 2
    assert acc.count == 1  # the refused points created no series


# -- removal and expiry ----------------------------------------------------------------------------
def test_no_recorded_value_deletes_the_series() -> None:
    removed: list[Series] = []
    acc = make(on_remove=removed.append)
    acc.ingest(request(metric("c", "sum", [num(1, {"k": "a"}), num(1, {"k": "b"})])))
    acc.ingest(request(metric("c", "sum", [num(0, {"k": "a"}, t=T0 + 2 * SEC, flags=NO_RECORDED_VALUE)])))
    assert [dict(s.labels)["k"] for s in removed] == ["a"]
    assert [dict(s.labels)["k"] for s in family(acc, "c_total").series.values()] == ["b"]
    assert acc.count == 1
    # The stream may come back.
    acc.ingest(request(metric("c", "sum", [num(3, {"k": "a"}, t=T0 + 3 * SEC)])))
    assert value(acc, "c_total", k="a") == 3


def test_expiry_removes_every_stale_series_and_only_those() -> None:
    clock = FakeClock()
    acc = make(clock, expiration=300)
    acc.ingest(request(metric("c", "sum", [num(1, {"k": str(i)}) for i in range(10)])))
    clock.now += 200
    acc.ingest(request(metric("c", "sum", [num(2, {"k": "3"}, t=T0 + 2 * SEC)])))
    clock.now += 100
    assert acc.expire() == 9  # all at once (the collector removes one per scrape: contrib#51289)
    assert [dict(s.labels)["k"] for s in family(acc, "c_total").series.values()] == ["3"]
    clock.now += 199
    assert acc.expire() == 0
    clock.now += 1
    assert acc.expire() == 1
    assert acc.count == 0 and acc.families == {}


def test_expiration_zero_never_expires() -> None:
    clock = FakeClock()
    acc = make(clock, expiration=0)
    acc.ingest(request(metric("g", "gauge", [num(1.0)])))
    clock.now += 10**9
    assert acc.expire() == 0
    assert acc.count == 1


# -- caps and overflow ------------------------------------------------------------------------------
def test_per_metric_cap_sends_new_streams_to_overflow() -> None:
    acc = make(max_series_per_metric=3, max_series=100)
    acc.ingest(request(metric("c", "sum", [num(10, {"k": str(i)}) for i in range(5)]),
                       metric("other", "sum", [num(1, {"k": str(i)}) for i in range(3)])))
    fam = family(acc, "c_total")
    assert fam.n == 3 and acc.count == 6
    overflow = series(acc, "c_total", otel_metric_overflow="true")
    assert overflow.value == 20  # the two refused streams' totals
    assert acc.on_refused.value == 2  # type: ignore[attr-defined]
    # Cumulative increases of refused streams are added, not their totals again.
    acc.ingest(request(metric("c", "sum", [num(15, {"k": "3"}, t=T0 + 2 * SEC),
                                           num(10, {"k": "4"}, t=T0 + 2 * SEC)])))
    assert overflow.value == 25
    assert acc.on_refused.value == 2  # type: ignore[attr-defined]
    assert value(acc, "c_total", k="0") == 10


def test_total_cap_and_last_value_overflow_for_gauges() -> None:
    acc = make(max_series=2)
    acc.ingest(request(metric("g", "gauge", [num(float(i), {"k": str(i)}) for i in range(4)])))
    assert acc.count == 2
    assert value(acc, "g", otel_metric_overflow="true") == 3.0


def test_overflow_of_delta_histograms_adds_deltas() -> None:
    acc = make(max_series_per_metric=1)
    acc.ingest(request(metric("h", "histogram", [hist([1], [1, 1], 1.0, {"k": "a"}),
                                                 hist([1], [2, 0], 1.0, {"k": "b"}),
                                                 hist([1], [0, 3], 1.0, {"k": "c"})], temporality=DELTA)))
    v = value(acc, "h", otel_metric_overflow="true")
    assert (v.counts, v.count) == ((2, 3), 5)


# -- type conflicts -----------------------------------------------------------------------------------
def test_type_conflict_drops_the_later_metric_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    acc = make()
    caplog.set_level(logging.WARNING, logger="otel_sidecar.exporter.prometheus")
    acc.ingest(request(metric("x", "gauge", [num(1.0)]), metric("x", "histogram", [hist([1], [1, 1])])))
    acc.ingest(request(metric("x", "histogram", [hist([1], [1, 1])])))
    # "x_bucket" as a gauge clashes with a histogram's samples; "y" counter vs "y_total" gauge in OpenMetrics.
    acc.ingest(request(metric("h", "histogram", [hist([1], [1, 1])]), metric("h.bucket", "gauge", [num(1.0)]),
                       metric("y", "sum", [num(1)]), metric("y.total", "gauge", [num(1.0)])))
    assert family(acc, "x").kind is Kind.GAUGE
    assert dropped(acc, "type_conflict") == 4
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Dropping metric 'x'", "Dropping metric 'h.bucket'", "Dropping metric 'y.total'"]


def test_help_and_unit_first_wins() -> None:
    acc = make()
    acc.ingest(request(metric("d", "gauge", [num(1.0)], unit="s", description="first"),
                       metric("d_seconds", "gauge", [num(2.0, {"a": 1})], description="second")))
    fam = family(acc, "d_seconds")
    assert (fam.help, fam.unit, len(fam.series)) == ("first", "seconds", 2)


def test_gauge_metadata_type() -> None:
    acc = make()
    acc.ingest(request(metric("build.info", "gauge", [num(1)], metadata={"prometheus.type": "info"}),
                       metric("mystery", "gauge", [num(1)], metadata={"prometheus.type": "unknown"})))
    assert family(acc, "build").kind is Kind.INFO
    assert family(acc, "build").sample_name == "build_info"
    assert family(acc, "mystery").kind is Kind.UNKNOWN


# -- exemplars ----------------------------------------------------------------------------------------
def test_exemplars_latest_per_counter_and_per_bucket() -> None:
    acc = make()
    acc.ingest(request(
        metric("c", "sum", [num(3, exemplars=[exemplar(1.0, T0 + 5, trace=7), exemplar(2.0, T0 + 9, trace=8)])]),
        metric("h", "histogram", [hist([1, 2], [1, 1, 1], 5.0, exemplars=[
            exemplar(0.5, T0 + 1), exemplar(1.5, T0 + 2), exemplar(1.7, T0 + 3, trace=9), exemplar(9.0, T0 + 4)])]),
        metric("g", "gauge", [num(1.0, exemplars=[exemplar(1.0, T0)])])))
    ex = series(acc, "c_total").exemplar
    assert (ex.value, dict(ex.labels)["trace_id"]) == (2.0, f"{8:032x}")
    per_bucket = series(acc, "h").exemplar
    assert [e.value for e in per_bucket] == [0.5, 1.7, 9.0]
    assert series(acc, "g").exemplar is None  # gauges drop exemplars


def test_exemplar_labels_are_capped_at_128_characters() -> None:
    acc = make()
    e = exemplar(1.0, T0, attrs={"user": "u" * 40, "trace_id": "ignored", "big": "b" * 100, "small": "s"})
    acc.ingest(request(metric("c", "sum", [num(1, exemplars=[e])])))
    labels = dict(series(acc, "c_total").exemplar.labels)
    assert set(labels) == {"trace_id", "span_id", "user", "small"}
    assert labels["trace_id"] == f"{1:032x}" and labels["span_id"] == f"{2:016x}"
    assert sum(len(k) + len(v) for k, v in labels.items()) <= 128


# -- wire input -------------------------------------------------------------------------------------
def test_ingest_from_wire_bytes_and_counts() -> None:
    acc = make()
    md = wire(request(metric("c", "sum", [num(i, {"i": i}) for i in range(50)]),
                      metric("h", "histogram", [hist([1], [1, 2], attrs={"i": i}) for i in range(10)], temporality=DELTA),
                      metric("e", "exp", [exp(1, (0, [1]), attrs={"i": i}) for i in range(5)], temporality=CUMULATIVE)))
    assert acc.ingest(md) == (65, 0)
    assert acc.count == 65
    gen = acc.generation
    assert acc.ingest(md) == (0, 65)  # a repeated request changes nothing
    assert acc.generation == gen
    assert dropped(acc, "out_of_order") == 65


def test_at_the_global_cap_new_metrics_are_dropped_without_state() -> None:
    acc = make(max_series=2)
    acc.ingest(request(metric("a", "gauge", [num(1.0, {"k": "1"}), num(1.0, {"k": "2"})])))
    for i in range(50):  # a flood of new metric names
        acc.ingest(request(metric(f"new.{i}", "sum", [num(1)])))
    assert sorted(acc.families) == ["a"]
    assert dropped(acc, "cardinality_limit") == 50
    assert len(acc._routes) == 1


def test_reserved_names_and_labels() -> None:
    acc = make()
    acc.ingest(request(metric("target.info", "gauge", [num(1.0)]),
                       metric("h", "histogram", [hist([1], [1, 1], attrs={"le": "x", "k": "v"})]),
                       metric("s", "summary", [summary(1, 1.0, [(0.5, 1.0)], attrs={"quantile": "q"})])))
    assert dropped(acc, "type_conflict") == 1
    assert dict(series(acc, "h").labels).keys() >= {"k"}
    assert "le" not in dict(series(acc, "h").labels)
    assert "quantile" not in dict(series(acc, "s").labels)


def test_series_labels_roundtrip_through_the_label_block() -> None:
    acc = make()
    value_ = 'a "quoted" \\ back\nslash ✓'
    acc.ingest(request(metric("g", "gauge", [num(1.0, {"v": value_})])))
    assert dict(series(acc, "g").labels)["v"] == value_
