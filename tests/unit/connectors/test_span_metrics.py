"""The span_metrics connector: series, dimensions, histograms, exemplars, temporality, limits, lifecycle."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

from agent import components
from agent.component import Kind, Settings, Signal
from agent.config.decode import decode
from agent.config.loader import load
from agent.config.model import build
from agent.connectors.span_metrics.config import DEFAULT_BUCKETS, Config
from agent.connectors.span_metrics.connector import SCOPE_NAME, SpanMetricsConnector
from agent.connectors.span_metrics.exphist import ExpHistogram, map_to_index
from agent.errors import ConfigErrors, QueueFullError
from agent.pdata import Metrics
from agent.telemetry.metrics import SelfMetrics
from agent.testing import ErrorConsumer, FakeClock, SinkConsumer

from .helpers import CLIENT, INTERNAL, S, attrs_of, metrics_by_name, point_for, sid, tid, traces

SettingsFn = Callable[..., Settings]
CALLS = "traces.span.metrics.calls"
DURATION = "traces.span.metrics.duration"
WALL0 = 1_800_000_000_000_000_000


class Wall:
    """Wall-clock nanoseconds that advance 1 ms per call (strictly increasing point times)."""

    def __init__(self) -> None:
        self.now = WALL0

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def make(settings: SettingsFn, raw: dict[str, Any] | None = None, *, sink: Any = None,
         clock: FakeClock | None = None, cid: str = "span_metrics") -> tuple[SpanMetricsConnector, SinkConsumer]:
    cfg = decode(Config, raw or {}, "connectors.span_metrics")
    sink = sink if sink is not None else SinkConsumer()
    conn = SpanMetricsConnector(settings(cid, Kind.CONNECTOR), cfg, {Signal.METRICS: sink},
                                clock=clock or FakeClock(), wall_ns=Wall())
    return conn, sink


def collect(conn: SpanMetricsConnector) -> Metrics:
    md = conn.collect()
    assert md is not None
    return md


@pytest.fixture
def settings(make_settings: SettingsFn) -> SettingsFn:
    return make_settings


# -- series and the default dimensions ---------------------------------------------------------
def test_calls_and_duration_per_default_dimensions(settings: SettingsFn) -> None:
    conn, _ = make(settings)
    conn.aggregate(traces([S(1, 1, "GET /a", dur_ms=3), S(2, 2, "GET /a", dur_ms=30), S(3, 3, "GET /a", dur_ms=30),
                           S(4, 4, "GET /a", dur_ms=7, error=True), S(5, 5, "SELECT", kind=CLIENT, dur_ms=1)]))
    md = collect(conn)
    assert md.item_count == 6  # 3 series x (calls + duration)
    res, metric, ok = next((r, m, p) for r, m, p in metrics_by_name(md)[CALLS]
                           if attrs_of(p).get("status.code") == "STATUS_CODE_UNSET" and
                           attrs_of(p)["span.name"] == "GET /a")
    assert res == {"service.name": "svc"}
    assert attrs_of(ok) == {"service.name": "svc", "span.name": "GET /a", "span.kind": "SPAN_KIND_SERVER",
                            "status.code": "STATUS_CODE_UNSET"}
    assert ok.as_int == 3
    assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 2 and metric.unit == ""
    err = point_for(md, CALLS, status__code="STATUS_CODE_ERROR")
    assert err.as_int == 1
    client = point_for(md, CALLS, span__kind="SPAN_KIND_CLIENT")
    assert client.as_int == 1
    h = point_for(md, DURATION, span__name="GET /a", status__code="STATUS_CODE_UNSET")
    assert list(h.explicit_bounds) == [b * 1000 for b in DEFAULT_BUCKETS]
    # 3 ms -> (2, 4]; 30 ms twice -> (10, 50]
    expected = [0] * 17
    expected[1] = 1
    expected[5] = 2
    assert list(h.bucket_counts) == expected
    assert h.count == 3 and math.isclose(h.sum, 63.0)
    dur_metric = next(m for _, m, _ in metrics_by_name(md)[DURATION])
    assert dur_metric.unit == "ms" and dur_metric.histogram.aggregation_temporality == 2
    scopes = {sm.scope.name for rm in md.proto.resource_metrics for sm in rm.scope_metrics}
    assert scopes == {SCOPE_NAME}


def test_exact_bucket_bounds_are_inclusive_upper_bounds(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"histogram": {"explicit": {"buckets": ["10ms", "100ms"]}}})
    conn.aggregate(traces([S(1, 1, dur_ms=10), S(2, 2, dur_ms=10.000001), S(3, 3, dur_ms=100),
                           S(4, 4, dur_ms=1000)]))
    h = point_for(collect(conn), DURATION)
    assert list(h.explicit_bounds) == [10.0, 100.0]
    assert list(h.bucket_counts) == [1, 2, 1]


def test_seconds_unit_and_negative_durations(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"histogram": {"unit": "s"}})
    conn.aggregate(traces([S(1, 1, dur_ms=1500), S(2, 2, dur_ms=-5)]))
    md = collect(conn)
    h = point_for(md, DURATION)
    assert list(h.explicit_bounds) == list(DEFAULT_BUCKETS)
    assert h.count == 2 and math.isclose(h.sum, 1.5)  # end before start counts as 0
    assert h.bucket_counts[0] == 1 and h.bucket_counts[DEFAULT_BUCKETS.index(2.0)] == 1
    assert next(m for _, m, _ in metrics_by_name(md)[DURATION]).unit == "s"


def test_histogram_can_be_disabled_and_namespace_changed(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"histogram": {"disable": True}, "namespace": "red"})
    conn.aggregate(traces([S(1, 1)]))
    md = collect(conn)
    assert set(metrics_by_name(md)) == {"red.calls"}
    conn2, _ = make(settings, {"namespace": ""})
    conn2.aggregate(traces([S(1, 1)]))
    assert set(metrics_by_name(collect(conn2))) == {"calls", "duration"}


def test_exclude_dimensions_aggregates_across_them(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"exclude_dimensions": ["status.code", "span.name"]})
    conn.aggregate(traces([S(1, 1, "a"), S(2, 2, "b", error=True), S(3, 3, "c", kind=CLIENT)]))
    md = collect(conn)
    points = [p for _, _, p in metrics_by_name(md)[CALLS]]
    assert sorted((attrs_of(p)["span.kind"], p.as_int) for p in points) == [
        ("SPAN_KIND_CLIENT", 1), ("SPAN_KIND_SERVER", 2)]
    assert all(set(attrs_of(p)) == {"service.name", "span.kind"} for p in points)


def test_resources_without_service_name_are_skipped(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    conn, _ = make(settings)
    conn.aggregate(traces([S(1, 1), S(2, 2)], service=None))
    assert conn.collect() is None
    assert telemetry.value("otelcol_connector_span_metrics_skipped_spans_total", {"connector": "span_metrics"}) == 2


def test_resources_are_kept_apart_or_grouped_by_key_attributes(settings: SettingsFn) -> None:
    conn, _ = make(settings)
    conn.aggregate(traces([S(1, 1)], resource={"service.instance.id": "a"}))
    conn.aggregate(traces([S(2, 2)], resource={"service.instance.id": "b"}))
    md = collect(conn)
    assert sorted(r["service.instance.id"] for r, _, _ in metrics_by_name(md)[CALLS]) == ["a", "b"]
    grouped, _ = make(settings, {"resource_metrics_key_attributes": ["service.name"]})
    grouped.aggregate(traces([S(1, 1)], resource={"service.instance.id": "a"}))
    grouped.aggregate(traces([S(2, 2)], resource={"service.instance.id": "b"}))
    [(res, _, p)] = metrics_by_name(collect(grouped))[CALLS]
    assert p.as_int == 2 and res["service.instance.id"] == "a"  # the first resource's attributes


def test_resource_cache_evicts_least_recently_used(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    conn, _ = make(settings, {"resource_metrics_cache_size": 2})
    for name in ("a", "b", "a", "c"):
        conn.aggregate(traces([S(1, 1)], service=name))
    md = collect(conn)
    assert sorted(r["service.name"] for r, _, _ in metrics_by_name(md)[CALLS]) == ["a", "c"]
    assert telemetry.value("otelcol_connector_span_metrics_expired_series_total", {"connector": "span_metrics"}) == 1


# -- extra dimensions --------------------------------------------------------------------------
def test_dimensions_from_span_then_resource_then_default(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"dimensions": [{"name": "http.route"}, {"name": "region"},
                                             {"name": "tenant", "default": "none"}, {"name": "absent"}]})
    conn.aggregate(traces([S(1, 1, attrs={"http.route": "/a", "region": "span-wins", "tenant": "t1"}),
                           S(2, 2, attrs={"http.route": "/a"}),
                           S(3, 3, attrs={"http.route": 404})], resource={"region": "eu"}))
    md = collect(conn)
    p1 = point_for(md, CALLS, tenant="t1")
    assert attrs_of(p1)["region"] == "span-wins" and "absent" not in attrs_of(p1)
    p2 = point_for(md, CALLS, http__route="/a", tenant="none")
    assert attrs_of(p2)["region"] == "eu" and p2.as_int == 1
    assert point_for(md, CALLS, http__route="404").as_int == 1  # non-string values as strings


def test_semconv_fallbacks_keep_one_label_name(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"dimensions": [{"name": "http.request.method"}, {"name": "http.route"}]})
    conn.aggregate(traces([
        S(1, 1, "GET /x", attrs={"http.method": "GET", "http.route": "/x"}),                 # old semconv
        S(2, 2, "GET /x", attrs={"http.request.method": "GET", "http.route": "/x"}),         # new semconv
        S(3, 3, "GET /x", attrs={"http.method": "POST", "http.request.method": "GET", "http.route": "/x"}),
    ]))
    md = collect(conn)
    assert point_for(md, CALLS, http__request__method="GET").as_int == 3
    strict, _ = make(settings, {"dimensions": [{"name": "http.request.method"}], "derive_dimensions": False})
    strict.aggregate(traces([S(1, 1, attrs={"http.method": "GET"})]))
    assert "http.request.method" not in attrs_of(point_for(collect(strict), CALLS))


def test_db_operation_and_table_derived_from_the_statement(settings: SettingsFn) -> None:
    dims = [{"name": "db.operation.name"}, {"name": "db.collection.name"}, {"name": "db.query.summary"}]
    conn, _ = make(settings, {"dimensions": dims})
    conn.aggregate(traces([
        # SQLAlchemy instrumentation, old semconv: "<op> <db name>" in db.operation, no table.
        S(1, 1, "select app.db", kind=CLIENT, attrs={"db.system": "sqlite", "db.operation": "select app.db",
                                                      "db.statement": "SELECT id FROM posts WHERE user_id = ?"}),
        # New semconv, with proper attributes: kept as given.
        S(2, 2, "SELECT users", kind=CLIENT, attrs={"db.system.name": "postgresql", "db.operation.name": "SELECT",
                                                     "db.collection.name": "users", "db.query.text": "SELECT 1"}),
        # No DB system: nothing is derived.
        S(3, 3, "rpc", kind=CLIENT, attrs={"db.statement": "SELECT * FROM t"}),
        # A server span: the DB dimensions are simply absent.
        S(4, 4, "GET /"),
    ]))
    md = collect(conn)
    a = attrs_of(point_for(md, CALLS, span__name="select app.db"))
    assert (a["db.operation.name"], a["db.collection.name"], a["db.query.summary"]) == ("SELECT", "posts",
                                                                                         "SELECT posts")
    b = attrs_of(point_for(md, CALLS, span__name="SELECT users"))
    assert (b["db.operation.name"], b["db.collection.name"], b["db.query.summary"]) == ("SELECT", "users",
                                                                                         "SELECT")
    assert not {"db.operation.name", "db.collection.name"} & set(attrs_of(point_for(md, CALLS, span__name="rpc")))
    assert not {"db.operation.name", "db.collection.name"} & set(attrs_of(point_for(md, CALLS, span__name="GET /")))


def test_legacy_dimension_names_are_derived_too(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"dimensions": [{"name": "db.operation"}, {"name": "db.sql.table"}]})
    conn.aggregate(traces([S(1, 1, "q", kind=CLIENT, attrs={"db.system": "sqlite",
                                                             "db.statement": "DELETE FROM sessions"})]))
    a = attrs_of(point_for(collect(conn), CALLS))
    assert (a["db.operation"], a["db.sql.table"]) == ("DELETE", "sessions")


def test_scope_dimensions(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"dimensions": [{"name": "span.instrumentation.scope.name"},
                                             {"name": "span.instrumentation.scope.version", "default": "?"}]})
    conn.aggregate(traces([S(1, 1)], scope="opentelemetry.instrumentation.fastapi"))
    a = attrs_of(point_for(collect(conn), CALLS))
    assert a["span.instrumentation.scope.name"] == "opentelemetry.instrumentation.fastapi"
    assert a["span.instrumentation.scope.version"] == "?"


# -- exemplars ---------------------------------------------------------------------------------
def test_exemplars_on_calls_and_histogram_buckets(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"exemplars": {"enabled": True, "max_per_data_point": 2},
                              "histogram": {"explicit": {"buckets": ["10ms", "100ms"]}}})
    conn.aggregate(traces([S(1, 1, dur_ms=5, start_ms=0), S(2, 2, dur_ms=50, start_ms=1),
                           S(3, 3, dur_ms=6, start_ms=2), S(4, 4, dur_ms=500, start_ms=3),
                           S(5, 5, dur_ms=7, start_ms=4, no_trace_id=True)]))
    md = collect(conn)
    calls = point_for(md, CALLS)
    assert [(e.trace_id, e.span_id) for e in calls.exemplars] == [(tid(3), sid(3)), (tid(4), sid(4))]
    assert [e.as_double for e in calls.exemplars] == [6.0, 500.0]  # the collector's: the duration
    h = point_for(md, DURATION)
    # Latest per bucket: span 3 (<=10, ends at 8 ms), span 2 (<=100, ends at 51 ms), span 4 (+Inf, ends at
    # 503 ms); the 2 that ended last are kept.
    assert sorted(e.span_id for e in h.exemplars) == [sid(2), sid(4)]
    ex4 = next(e for e in h.exemplars if e.span_id == sid(4))
    assert ex4.as_double == 500.0 and ex4.time_unix_nano > 0
    # Cleared at every flush.
    md2 = collect(conn)
    assert not point_for(md2, CALLS).exemplars and not point_for(md2, DURATION).exemplars


def test_no_exemplars_unless_enabled(settings: SettingsFn) -> None:
    conn, _ = make(settings)
    conn.aggregate(traces([S(1, 1)]))
    md = collect(conn)
    assert not point_for(md, CALLS).exemplars and not point_for(md, DURATION).exemplars


# -- temporality and expiry --------------------------------------------------------------------
def test_cumulative_keeps_start_time_and_grows(settings: SettingsFn) -> None:
    conn, _ = make(settings)
    conn.aggregate(traces([S(1, 1)]))
    p1 = point_for(collect(conn), CALLS)
    conn.aggregate(traces([S(2, 2), S(3, 3)]))
    p2 = point_for(collect(conn), CALLS)
    assert p2.as_int == 3 and p2.start_time_unix_nano == p1.start_time_unix_nano
    assert p2.time_unix_nano > p1.time_unix_nano > p1.start_time_unix_nano


def test_delta_points_cover_contiguous_windows_and_idle_series_go(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA"})
    conn.aggregate(traces([S(1, 1, "a"), S(2, 2, "a"), S(3, 3, "b")]))
    md1 = collect(conn)
    a1 = point_for(md1, CALLS, span__name="a")
    assert a1.as_int == 2 and point_for(md1, DURATION, span__name="a").count == 2
    assert next(m for _, m, _ in metrics_by_name(md1)[CALLS]).sum.aggregation_temporality == 1
    conn.aggregate(traces([S(4, 4, "a")]))
    md2 = collect(conn)
    a2 = point_for(md2, CALLS, span__name="a")
    assert a2.as_int == 1 and a2.start_time_unix_nano == a1.time_unix_nano
    h2 = point_for(md2, DURATION, span__name="a")
    assert h2.count == 1 and sum(h2.bucket_counts) == 1
    assert [attrs_of(p)["span.name"] for _, _, p in metrics_by_name(md2)[CALLS]] == ["a"]  # b was idle
    assert conn.series_count == 1
    assert conn.collect() is None  # nothing new: nothing sent, and the series is gone
    assert conn.series_count == 0


def test_metrics_expiration_removes_stale_series(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    clock = FakeClock()
    conn, _ = make(settings, {"metrics_expiration": "10s"}, clock=clock)
    conn.aggregate(traces([S(1, 1, "old")]))
    clock.now += 6
    conn.aggregate(traces([S(2, 2, "new")]))
    p_old = point_for(collect(conn), CALLS, span__name="old")
    clock.now += 5  # old: 11 s idle, new: 5 s
    md = collect(conn)
    assert [attrs_of(p)["span.name"] for _, _, p in metrics_by_name(md)[CALLS]] == ["new"]
    assert telemetry.value("otelcol_connector_span_metrics_expired_series_total", {"connector": "span_metrics"}) == 1
    conn.aggregate(traces([S(3, 3, "old")]))  # comes back as a new series: reset start time
    p_back = point_for(collect(conn), CALLS, span__name="old")
    assert p_back.as_int == 1 and p_back.start_time_unix_nano > p_old.start_time_unix_nano


# -- cardinality -------------------------------------------------------------------------------
def test_cardinality_limit_folds_new_series_into_overflow(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    conn, _ = make(settings, {"aggregation_cardinality_limit": 2})
    conn.aggregate(traces([S(i, i, f"op-{i}") for i in range(1, 6)] + [S(9, 9, "op-1")]))
    md = collect(conn)
    calls = metrics_by_name(md)[CALLS]
    assert len(calls) == 3
    assert point_for(md, CALLS, span__name="op-1").as_int == 2
    over = point_for(md, CALLS, otel__metric__overflow=True)
    assert attrs_of(over) == {"otel.metric.overflow": True} and over.as_int == 3
    assert point_for(md, DURATION, otel__metric__overflow=True).count == 3
    assert telemetry.value("otelcol_connector_span_metrics_overflow_spans_total", {"connector": "span_metrics"}) == 3
    assert telemetry.value("otelcol_connector_span_metrics_series", {"connector": "span_metrics"}) == 3
    # Limits are per resource.
    conn.aggregate(traces([S(1, 1, "x")], service="other"))
    assert point_for(collect(conn), CALLS, service__name="other").as_int == 1


def test_expired_series_free_cardinality(settings: SettingsFn) -> None:
    clock = FakeClock()
    conn, _ = make(settings, {"aggregation_cardinality_limit": 1, "metrics_expiration": "1s"}, clock=clock)
    conn.aggregate(traces([S(1, 1, "a")]))
    clock.now += 2
    assert conn.collect() is None  # a expired, nothing left
    conn.aggregate(traces([S(2, 2, "b")]))
    assert point_for(collect(conn), CALLS, span__name="b").as_int == 1


# -- exponential histograms --------------------------------------------------------------------
@pytest.mark.parametrize("scale", [-3, -1, 0, 1, 3, 8, 20])
def test_exponential_index_mapping_matches_the_definition(scale: int) -> None:
    base = 2.0 ** (2.0 ** -scale)
    for v in (1e-3, 0.37, 1.0, 1.5, 2.0, 3.0, 8.0, 10.0, 123.456, 1024.0, 99999.0):
        i = map_to_index(v, scale)
        lower, upper = base ** i, base ** (i + 1)
        assert lower < v * (1 + 1e-12) and v <= upper * (1 + 1e-12), (v, scale, i)
    for k in (-3, 0, 1, 5):  # powers of two are the upper bound of their bucket at scale >= 0
        if scale >= 0:
            assert map_to_index(2.0 ** k, scale) == (k << scale) - 1


def test_exponential_histogram_rescales_to_max_size() -> None:
    h = ExpHistogram(max_size=8)
    values = [0.0, 1.0, 2.5, 7.0, 40.0, 1000.0, 1e5]
    for v in values:
        h.record(v)
    assert h.count == len(values) and h.zero_count == 1 and math.isclose(h.sum, sum(values))
    assert h.hi - h.lo + 1 <= 8 and h.scale < 20
    assert sum(h.bucket_counts()) == len(values) - 1
    base = 2.0 ** (2.0 ** -h.scale)
    for v in values[1:]:  # every value lies in a populated bucket that covers it
        i = map_to_index(v, h.scale)
        assert h.counts[i] >= 1 and base ** i < v <= base ** (i + 1) * (1 + 1e-12)


def test_exponential_duration_points(settings: SettingsFn) -> None:
    conn, _ = make(settings, {"histogram": {"exponential": {"max_size": 16}},
                              "exemplars": {"enabled": True}})
    conn.aggregate(traces([S(1, 1, dur_ms=1), S(2, 2, dur_ms=10), S(3, 3, dur_ms=100), S(4, 4, dur_ms=0)]))
    md = collect(conn)
    [(_, m, p)] = metrics_by_name(md)[DURATION]
    assert m.WhichOneof("data") == "exponential_histogram" and m.exponential_histogram.aggregation_temporality == 2
    assert p.count == 4 and p.zero_count == 1 and math.isclose(p.sum, 111.0)
    assert p.min == 0.0 and p.max == 100.0
    assert len(p.positive.bucket_counts) <= 16 and sum(p.positive.bucket_counts) == 3
    assert len(p.exemplars) == 4
    assert attrs_of(p)["span.name"] == "op"


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "path"), [
    ({"events": {"enabled": True, "dimensions": [{"name": "exception.type"}]}}, "events.enabled"),
    ({"histogram": {"explicit": {"buckets": ["10ms"]}, "exponential": {"max_size": 10}}}, "histogram"),
    ({"histogram": {"explicit": {"buckets": ["10ms", "5ms"]}}}, "histogram.explicit.buckets"),
    ({"histogram": {"explicit": {"buckets": [10]}}}, "histogram.explicit.buckets[0]"),
    ({"histogram": {"unit": "us"}}, "histogram.unit"),
    ({"histogram": {"dimensions": [{"name": "x"}]}}, "histogram.dimensions"),
    ({"calls_dimensions": [{"name": "x"}]}, "calls_dimensions"),
    ({"dimensions": [{"name": "span.kind"}]}, "dimensions[0].name"),
    ({"dimensions": [{"name": "a"}, {"name": "a"}]}, "dimensions[1].name"),
    ({"dimensions": [{"default": "x"}]}, "dimensions[0].name"),
    ({"aggregation_temporality": "DELTA"}, "aggregation_temporality"),
    ({"aggregation_cardinality_limit": -1}, "aggregation_cardinality_limit"),
    ({"metrics_flush_interval": "0s"}, "metrics_flush_interval"),
    ({"include_instrumentation_scope": ["x"]}, "include_instrumentation_scope"),
    ({"exemplars": {"max_per_data_point": 0}}, "exemplars.max_per_data_point"),
    ({"dimension": []}, "dimension"),
])
def test_invalid_configs_name_the_key(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigErrors) as err:
        decode(Config, raw, "connectors.span_metrics")
    assert any(e.path == f"connectors.span_metrics.{path}".rstrip(".") for e in err.value.errors), err.value.errors


def test_collector_config_shape_and_defaults() -> None:
    cfg = decode(Config, {
        "histogram": {"unit": "ms", "explicit": {"buckets": ["100us", "1ms", "2ms", "6ms", "10ms", "100ms",
                                                             "250ms"]}},
        "dimensions": [{"name": "http.method", "default": "GET"}, {"name": "http.status_code"}],
        "exemplars": {"enabled": True}, "exclude_dimensions": ["status.code"], "dimensions_cache_size": 1000,
        "aggregation_temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "metrics_flush_interval": "15s",
        "metrics_expiration": "5m", "events": {"enabled": False}, "resource_metrics_key_attributes": ["service.name"],
    }, "c")
    assert cfg.bounds == (0.1, 1.0, 2.0, 6.0, 10.0, 100.0, 250.0)
    d = Config()
    assert (d.namespace, d.metrics_flush_interval, d.metrics_expiration, d.aggregation_temporality,
            d.aggregation_cardinality_limit, d.histogram.unit, d.exemplars.max_per_data_point) == (
        "traces.span.metrics", 60.0, 0.0, "AGGREGATION_TEMPORALITY_CUMULATIVE", 0, "ms", 5)
    assert d.bounds == (2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000)


def test_deprecations_are_warned(settings: SettingsFn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    make(settings, {"dimensions_cache_size": 1000, "exclude_dimensions": ["http.route"]}, cid="spanmetrics")
    text = caplog.text
    assert "dimensions_cache_size is deprecated" in text
    assert "'spanmetrics' is deprecated" in text
    assert "http.route" in text


def test_registered_under_both_names_as_traces_to_metrics() -> None:
    f = components.lookup(Kind.CONNECTOR, "spanmetrics")
    assert f is components.lookup(Kind.CONNECTOR, "span_metrics")
    assert f.type == "span_metrics" and f.connects == frozenset({(Signal.TRACES, Signal.METRICS)})


def _cfg(connector: str, out: str) -> str:
    return f"""yaml:
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}}}
exporters: {{debug: {{}}}}
connectors: {{{connector}: {{}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [{connector}]}}
    {out}: {{receivers: [{connector}], exporters: [debug]}}
"""


def test_graph_accepts_traces_to_metrics_only() -> None:
    assert build(load([_cfg("spanmetrics", "metrics")], env={})).connectors
    with pytest.raises(ConfigErrors, match="does not connect traces->logs"):
        build(load([_cfg("span_metrics", "logs")], env={}))


# -- lifecycle ---------------------------------------------------------------------------------
async def test_timer_flushes_and_shutdown_flushes_once_more(settings: SettingsFn) -> None:
    clock = FakeClock()
    sink = SinkConsumer()
    cfg = decode(Config, {"metrics_flush_interval": "5s"}, "c")
    conn = SpanMetricsConnector(settings("span_metrics", Kind.CONNECTOR), cfg, {Signal.METRICS: sink},
                                clock=clock, wall_ns=Wall(), sleep=clock.sleep)
    await conn.start(None)  # type: ignore[arg-type]
    await conn.consume_traces(traces([S(1, 1)]))
    await sink.wait_for(Signal.METRICS, 2)
    assert 5.0 in clock.sleeps
    await conn.consume_traces(traces([S(2, 2)]))
    await conn.shutdown()
    await conn.shutdown()
    last = sink.received[Signal.METRICS][-1]
    assert point_for(last, CALLS).as_int == 2


async def test_shutdown_without_start_and_consumers_required(settings: SettingsFn) -> None:
    conn, sink = make(settings)
    await conn.consume_traces(traces([S(1, 1)]))
    await conn.shutdown()
    assert sink.count(Signal.METRICS) == 0
    with pytest.raises(ValueError, match="metrics pipeline"):
        SpanMetricsConnector(settings("span_metrics", Kind.CONNECTOR), Config(), {Signal.LOGS: SinkConsumer()})


async def test_refused_flush_is_counted_not_raised(settings: SettingsFn, telemetry: SelfMetrics,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    failing = ErrorConsumer(lambda: QueueFullError("queue is full"))
    conn, _ = make(settings, sink=failing)
    conn.aggregate(traces([S(1, 1), S(2, 2, kind=INTERNAL)]))
    await conn.flush()
    await conn.flush()
    assert failing.calls == 2
    assert telemetry.value("otelcol_connector_span_metrics_dropped_metric_points_total",
                           {"connector": "span_metrics"}) == 8
    assert caplog.text.count("refused span metrics") == 1  # rate-limited
    assert telemetry.value("otelcol_connector_span_metrics_spans_total", {"connector": "span_metrics"}) == 2
