"""The span_detectors connector: slow requests, slow queries, N+1, trace buffering, outputs, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent import components
from agent.component import Kind, Settings, Signal
from agent.config.decode import decode
from agent.config.loader import load
from agent.config.model import build
from agent.connectors.span_detectors.config import Config
from agent.connectors.span_detectors.connector import SCOPE_NAME, SpanDetectorsConnector
from agent.errors import ConfigErrors, QueueFullError
from agent.pdata import Logs, Metrics
from agent.telemetry.metrics import SelfMetrics
from agent.testing import ErrorConsumer, FakeClock, SinkConsumer

from .helpers import CLIENT, INTERNAL, SERVER, S, attrs_of, metrics_by_name, point_for, sid, tid, traces

SettingsFn = Callable[..., Settings]
LBL = {"connector": "span_detectors"}
N1_SQL = "SELECT posts.id, posts.title FROM posts WHERE posts.user_id = ?"


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


@pytest.fixture
def settings(make_settings: SettingsFn) -> SettingsFn:
    return make_settings


def make(settings: SettingsFn, raw: dict[str, Any] | None = None, *, logs: Any = "sink", metrics: Any = "sink",
         clock: FakeClock | None = None) -> tuple[SpanDetectorsConnector, SinkConsumer, FakeClock]:
    cfg = decode(Config, {"slow_requests": {"threshold": "500ms"}, "slow_queries": {"threshold": "50ms"},
                          "n_plus_one": {"threshold": 3}, "trace_window": "30s", "root_span_wait": "2s",
                          **(raw or {})}, "connectors.span_detectors")
    sink = SinkConsumer()
    consumers: dict[Signal, object] = {}
    if logs is not None:
        consumers[Signal.LOGS] = sink if logs == "sink" else logs
    if metrics is not None:
        consumers[Signal.METRICS] = sink if metrics == "sink" else metrics
    clock = clock or FakeClock()
    conn = SpanDetectorsConnector(settings("span_detectors", Kind.CONNECTOR), cfg, consumers, clock=clock,
                                  wall_ns=Wall(), sleep=clock.sleep)
    return conn, sink, clock


def root(trace: int, route: str = "/users", dur_ms: float = 20.0, method: str = "GET", **kw: Any) -> S:
    return S(trace, 1, f"{method} {route}", kind=SERVER, dur_ms=dur_ms,
             attrs={"http.route": route, "http.request.method": method, **kw})


def db(trace: int, span: int, parent: int = 1, sql: str = N1_SQL, dur_ms: float = 1.0, system: str = "sqlite",
       new_semconv: bool = True) -> S:
    attrs = ({"db.system.name": system, "db.query.text": sql} if new_semconv else
             {"db.system": system, "db.statement": sql})
    return S(trace, span, "SELECT app.db", parent=parent, kind=CLIENT, dur_ms=dur_ms, attrs=attrs)


def records(sink: SinkConsumer) -> list[tuple[dict[str, Any], Any]]:
    out = []
    for ld in sink.received[Signal.LOGS]:
        assert isinstance(ld, Logs)
        for rl in ld.proto.resource_logs:
            res = attrs_of(rl.resource)
            for sl in rl.scope_logs:
                assert sl.scope.name == SCOPE_NAME
                out.extend((res, r) for r in sl.log_records)
    return out


def findings(sink: SinkConsumer, kind: str) -> list[Any]:
    return [r for _, r in records(sink) if attrs_of(r)["span_detectors.finding"] == kind]


def last_metrics(sink: SinkConsumer) -> Metrics:
    md = sink.received[Signal.METRICS][-1]
    assert isinstance(md, Metrics)
    return md


# -- slow requests -----------------------------------------------------------------------------
async def test_slow_request_is_reported_at_the_next_tick(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    conn, sink, _ = make(settings)
    conn.inspect(traces([root(1, "/slow", dur_ms=700), root(2, "/fast", dur_ms=499),
                         S(3, 1, "GET /nested", parent=9, kind=SERVER, dur_ms=600, attrs={"http.method": "POST"})],
                        resource={"service.instance.id": "i-1"}))
    await conn.tick()
    slow = findings(sink, "slow_request")
    assert len(slow) == 2
    r = next(r for r in slow if r.trace_id == tid(1))
    assert r.span_id == sid(1) and r.severity_text == "WARN" and r.severity_number == 13
    assert r.event_name == "span_detectors.slow_request"
    assert r.body.string_value == "Slow request: GET /slow took 700 ms (threshold 500 ms)."
    a = attrs_of(r)
    assert a["http.route"] == "/slow" and a["http.request.method"] == "GET" and a["span.name"] == "GET /slow"
    assert a["span_detectors.duration_ms"] == 700.0 and a["span_detectors.threshold_ms"] == 500.0
    assert r.time_unix_nano > 0
    nested = attrs_of(next(r for r in slow if r.trace_id == tid(3)))
    assert nested["http.request.method"] == "POST" and "http.route" not in nested  # old semconv name read
    res = {k for res, _ in records(sink) for k in res}
    assert res == {"service.name", "service.instance.id"}
    assert telemetry.value("otelcol_connector_span_detectors_findings_total",
                           {**LBL, "detector": "slow_request"}) == 2
    await conn.tick(force_metrics=True)
    md = last_metrics(sink)
    assert point_for(md, "span_detectors.slow_requests", http__route="/slow").as_int == 1
    [(res_attrs, m, _)] = [x for x in metrics_by_name(md)["span_detectors.slow_requests"]
                           if attrs_of(x[2]).get("http.route") == "/slow"]
    assert m.unit == "{request}" and m.sum.is_monotonic and res_attrs["service.name"] == "svc"
    assert attrs_of(point_for(md, "span_detectors.slow_requests", http__request__method="POST")) == {
        "http.request.method": "POST"}


# -- N+1 ---------------------------------------------------------------------------------------
async def test_n_plus_one_is_reported_once_per_trace_after_the_root_arrives(settings: SettingsFn,
                                                                            telemetry: SelfMetrics) -> None:
    conn, sink, clock = make(settings)
    spans = [db(1, 2, sql="SELECT users.id FROM users")]
    # 5 executions under the server span, literal values differ: one sanitised statement.
    spans += [db(1, 10 + i, sql=f"SELECT posts.id, posts.title FROM posts WHERE posts.user_id = {i}",
                 dur_ms=2.0, new_semconv=False) for i in range(5)]
    conn.inspect(traces(spans))
    conn.inspect(traces([root(1)]))  # the root ends last, in a later export
    await conn.tick()
    assert findings(sink, "n_plus_one") == [] and conn.pending_traces == 1  # waiting root_span_wait
    clock.now += 2.0
    await conn.tick()
    [r] = findings(sink, "n_plus_one")
    assert r.trace_id == tid(1) and r.span_id == sid(1)  # the parent running the loop
    a = attrs_of(r)
    assert a["db.query.text"] == N1_SQL
    assert a["db.query.summary"] == "SELECT posts" and a["db.operation.name"] == "SELECT"
    assert a["db.collection.name"] == "posts" and a["db.system.name"] == "sqlite"
    assert len(a["db.query.fingerprint"]) == 16
    assert a["http.route"] == "/users" and a["http.request.method"] == "GET"
    assert a["span_detectors.count"] == 5 and a["span_detectors.total_count"] == 5
    assert a["span_detectors.threshold"] == 3 and a["span_detectors.duration_ms"] == 10.0
    assert r.body.string_value.startswith("N+1 queries in GET /users: SELECT posts ran 5 times under one parent")
    assert conn.pending_traces == 0
    # Late spans of the evaluated trace never make a second report.
    conn.inspect(traces([db(1, 50 + i) for i in range(5)]))
    clock.now += 60
    await conn.tick()
    assert len(findings(sink, "n_plus_one")) == 1
    assert telemetry.value("otelcol_connector_span_detectors_late_spans_total", LBL) == 5
    await conn.tick(force_metrics=True)
    p = point_for(last_metrics(sink), "span_detectors.n_plus_one")
    assert p.as_int == 1
    assert attrs_of(p) == {"http.route": "/users", "db.system.name": "sqlite", "db.query.summary": "SELECT posts",
                           "db.query.fingerprint": a["db.query.fingerprint"]}


async def test_no_report_at_or_below_threshold_or_across_parents(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    conn.inspect(traces([root(1), *[db(1, 10 + i) for i in range(3)]]))             # exactly the threshold
    conn.inspect(traces([root(2), S(2, 2, "a", parent=1, kind=INTERNAL), S(2, 3, "b", parent=1, kind=INTERNAL),
                         *[db(2, 10 + i, parent=2) for i in range(2)],
                         *[db(2, 20 + i, parent=3) for i in range(2)]]))              # 4 in total, 2 per parent
    conn.inspect(traces([root(3), *[db(3, 10 + i, sql=f"SELECT * FROM t{i}") for i in range(8)]]))  # all different
    clock.now += 3
    await conn.tick()
    assert findings(sink, "n_plus_one") == []
    assert conn.pending_traces == 0


async def test_one_report_per_statement_with_the_worst_parent(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    other = "SELECT comments.id FROM comments WHERE comments.post_id = ?"
    conn.inspect(traces([root(1), S(1, 2, "loop", parent=1, kind=INTERNAL),
                         *[db(1, 10 + i, parent=1) for i in range(4)],
                         *[db(1, 20 + i, parent=2) for i in range(6)],
                         *[db(1, 30 + i, parent=2, sql=other) for i in range(4)]]))
    clock.now += 2
    await conn.tick()
    found = findings(sink, "n_plus_one")
    assert len(found) == 2
    posts = next(r for r in found if attrs_of(r)["db.collection.name"] == "posts")
    assert posts.span_id == sid(2)
    assert attrs_of(posts)["span_detectors.count"] == 6 and attrs_of(posts)["span_detectors.total_count"] == 10
    comments = next(r for r in found if attrs_of(r)["db.collection.name"] == "comments")
    assert attrs_of(comments)["span_detectors.count"] == 4


async def test_trace_without_root_is_evaluated_after_the_window(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    conn.inspect(traces([db(7, 10 + i, parent=99) for i in range(5)]))  # parent from another service
    clock.now += 29
    await conn.tick()
    assert findings(sink, "n_plus_one") == []
    clock.now += 1
    await conn.tick()
    [r] = findings(sink, "n_plus_one")
    assert "http.route" not in attrs_of(r) and r.span_id == sid(99)
    assert r.body.string_value.startswith("N+1 queries: SELECT posts ran 5 times")


async def test_internal_root_and_remote_parent_flags(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    job = S(5, 1, "nightly job", kind=INTERNAL)
    conn.inspect(traces([job, *[db(5, 10 + i) for i in range(4)]]))
    clock.now += 2
    await conn.tick()
    assert len(findings(sink, "n_plus_one")) == 1  # closed after root_span_wait, not the 30 s window


def test_local_root_rules() -> None:
    from agent.connectors.spans import is_local_root

    def first(sp: S) -> Any:
        return traces([sp]).proto.resource_spans[0].scope_spans[0].spans[0]

    assert is_local_root(first(S(1, 1, kind=INTERNAL)))                                  # no parent
    assert is_local_root(first(S(1, 2, parent=1, kind=SERVER, flags=0x300)))             # remote parent
    assert not is_local_root(first(S(1, 2, parent=1, kind=SERVER, flags=0x100)))         # local parent
    assert is_local_root(first(S(1, 2, parent=1, kind=SERVER)))                          # unknown: server
    assert not is_local_root(first(S(1, 2, parent=1, kind=INTERNAL)))
    assert is_local_root(first(S(1, 2, parent=1, kind=INTERNAL, flags=0x300)))           # e.g. a consumer


# -- slow queries ------------------------------------------------------------------------------
async def test_slow_query_carries_the_route_of_its_trace(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    conn.inspect(traces([db(1, 2, sql="SELECT * FROM orders WHERE total > 100", dur_ms=80),
                         db(1, 3, sql="SELECT 1", dur_ms=49), root(1, "/orders")]))
    clock.now += 2
    await conn.tick(force_metrics=True)
    [r] = findings(sink, "slow_query")
    assert r.trace_id == tid(1) and r.span_id == sid(2)
    a = attrs_of(r)
    assert a["db.query.text"] == "SELECT * FROM orders WHERE total > ?"
    assert a["http.route"] == "/orders" and a["span_detectors.duration_ms"] == 80.0
    assert a["span_detectors.threshold_ms"] == 50.0
    assert r.body.string_value == "Slow query in GET /orders: SELECT orders took 80 ms (threshold 50 ms)."
    p = point_for(last_metrics(sink), "span_detectors.slow_queries")
    assert p.as_int == 1 and attrs_of(p)["db.query.summary"] == "SELECT orders"
    assert attrs_of(p)["http.route"] == "/orders"


async def test_late_slow_query_is_still_reported(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    conn.inspect(traces([root(1)]))
    clock.now += 2
    await conn.tick()
    conn.inspect(traces([db(1, 5, dur_ms=200)]))
    await conn.tick()
    [r] = findings(sink, "slow_query")
    assert "http.route" not in attrs_of(r)


async def test_non_db_client_spans_are_ignored(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings)
    conn.inspect(traces([S(1, 2, "GET", parent=1, kind=CLIENT, dur_ms=900, attrs={"http.method": "GET"}),
                         S(1, 3, "connect", parent=1, kind=CLIENT, dur_ms=900, attrs={"db.system": "sqlite"})]))
    assert conn.pending_traces == 0
    clock.now += 60
    await conn.tick()
    assert records(sink) == []


# -- bounded memory ----------------------------------------------------------------------------
async def test_max_traces_evaluates_the_oldest_early(settings: SettingsFn, telemetry: SelfMetrics) -> None:
    conn, sink, _ = make(settings, {"max_traces": 2})
    for t in (1, 2, 3):
        conn.inspect(traces([db(t, 10 + i) for i in range(4)]))
    assert conn.pending_traces == 2
    assert telemetry.value("otelcol_connector_span_detectors_traces_evicted_total", LBL) == 1
    assert telemetry.value("otelcol_connector_span_detectors_traces_on_memory", LBL) == 2
    await conn.tick()
    assert [r.trace_id for r in findings(sink, "n_plus_one")] == [tid(1)]
    # The evicted trace's later spans do not start a new entry.
    conn.inspect(traces([db(1, 30)]))
    assert conn.pending_traces == 2


# -- outputs -----------------------------------------------------------------------------------
async def test_counters_are_cumulative_or_delta(settings: SettingsFn) -> None:
    conn, sink, _ = make(settings)
    for t in (1, 2):
        conn.inspect(traces([root(t, dur_ms=600)]))
        await conn.tick(force_metrics=True)
    p = point_for(last_metrics(sink), "span_detectors.slow_requests")
    first = point_for(sink.received[Signal.METRICS][0], "span_detectors.slow_requests")  # type: ignore[arg-type]
    assert p.as_int == 2 and p.start_time_unix_nano == first.start_time_unix_nano
    dconn, dsink, _ = make(settings, {"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA"})
    for t in (1, 2):
        dconn.inspect(traces([root(t, dur_ms=600)]))
        await dconn.tick(force_metrics=True)
    d1, d2 = (point_for(m, "span_detectors.slow_requests") for m in dsink.received[Signal.METRICS])  # type: ignore[arg-type]
    assert (d1.as_int, d2.as_int) == (1, 1) and d2.start_time_unix_nano == d1.time_unix_nano
    await dconn.tick(force_metrics=True)  # idle interval: nothing sent, counter forgotten
    assert len(dsink.received[Signal.METRICS]) == 2 and dconn.collect_metrics() is None


async def test_cumulative_counters_expire(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings, {"metrics_expiration": "60s", "aggregation_cardinality_limit": 1})
    conn.inspect(traces([root(1, "/a", dur_ms=600)]))
    clock.now += 30
    conn.inspect(traces([root(2, "/b", dur_ms=600)]))  # over the limit: overflow
    await conn.tick(force_metrics=True)
    assert len(metrics_by_name(last_metrics(sink))["span_detectors.slow_requests"]) == 2
    clock.now += 30  # /a: 60 s without findings
    await conn.tick(force_metrics=True)
    [(_, _, p)] = metrics_by_name(last_metrics(sink))["span_detectors.slow_requests"]
    assert attrs_of(p) == {"otel.metric.overflow": True}
    conn.inspect(traces([root(3, "/c", dur_ms=600)]))  # the freed slot takes a new route
    await conn.tick(force_metrics=True)
    assert point_for(last_metrics(sink), "span_detectors.slow_requests", http__route="/c").as_int == 1


async def test_counter_cardinality_limit(settings: SettingsFn) -> None:
    conn, sink, _ = make(settings, {"aggregation_cardinality_limit": 2})
    conn.inspect(traces([root(t, f"/r{t}", dur_ms=600) for t in range(1, 5)]))
    await conn.tick(force_metrics=True)
    md = last_metrics(sink)
    assert len(metrics_by_name(md)["span_detectors.slow_requests"]) == 3
    assert point_for(md, "span_detectors.slow_requests", otel__metric__overflow=True).as_int == 2
    assert len(findings(sink, "slow_request")) == 4  # every finding is still logged


async def test_metrics_only_and_logs_only(settings: SettingsFn) -> None:
    conn, sink, _ = make(settings, logs=None)
    conn.inspect(traces([root(1, dur_ms=600)]))
    assert conn.pending_findings == 0
    await conn.tick(force_metrics=True)
    assert sink.count(Signal.LOGS) == 0 and sink.count(Signal.METRICS) == 1
    conn2, sink2, _ = make(settings, metrics=None)
    conn2.inspect(traces([root(1, dur_ms=600)]))
    await conn2.tick(force_metrics=True)
    assert sink2.count(Signal.LOGS) == 1 and sink2.count(Signal.METRICS) == 0
    with pytest.raises(ValueError, match="logs or metrics pipeline"):
        make(settings, logs=None, metrics=None)


async def test_metrics_are_sent_on_their_own_interval(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings, {"metrics_flush_interval": "10s"})
    conn.inspect(traces([root(1, dur_ms=600)]))
    await conn.tick()
    assert sink.count(Signal.METRICS) == 0 and sink.count(Signal.LOGS) == 1
    clock.now += 10
    await conn.tick()
    assert sink.count(Signal.METRICS) == 1


async def test_refusals_are_counted_and_logged_once(settings: SettingsFn, telemetry: SelfMetrics,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    failing = ErrorConsumer(lambda: QueueFullError("queue is full"))
    conn, _, _ = make(settings, logs=failing, metrics=failing)
    conn.inspect(traces([root(1, dur_ms=600), root(2, dur_ms=700)]))
    await conn.tick(force_metrics=True)
    assert telemetry.value("otelcol_connector_span_detectors_dropped_items_total", {**LBL, "otel_signal": "logs"}) == 2
    assert telemetry.value("otelcol_connector_span_detectors_dropped_items_total",
                           {**LBL, "otel_signal": "metrics"}) == 1
    assert caplog.text.count("refused span detector") == 1
    assert conn.pending_findings == 0  # not retried


async def test_statements_are_cut_in_records(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings, {"max_statement_length": 20})
    conn.inspect(traces([db(1, 2, dur_ms=90)]))
    clock.now += 30
    await conn.tick()
    [r] = findings(sink, "slow_query")
    assert attrs_of(r)["db.query.text"] == N1_SQL[:20]


# -- lifecycle and config ----------------------------------------------------------------------
async def test_ticker_and_shutdown_flush_everything(settings: SettingsFn) -> None:
    conn, sink, clock = make(settings, {"root_span_wait": "200ms"})
    assert conn.tick_interval == 0.1
    await conn.start(None)  # type: ignore[arg-type]
    conn.inspect(traces([root(1), *[db(1, 10 + i) for i in range(4)]]))
    await sink.wait_for(Signal.LOGS, 1)
    assert findings(sink, "n_plus_one")
    conn.inspect(traces([db(2, 10 + i) for i in range(4)]))  # pending at shutdown: evaluated then
    await conn.shutdown()
    await conn.shutdown()
    assert len(findings(sink, "n_plus_one")) == 2
    assert sum(p.as_int for _, _, p in metrics_by_name(last_metrics(sink))["span_detectors.n_plus_one"]) == 2
    assert min(clock.sleeps) == 0.1


async def test_shutdown_without_start(settings: SettingsFn) -> None:
    conn, sink, _ = make(settings)
    await conn.shutdown()
    assert sink.count(Signal.LOGS) == 0


@pytest.mark.parametrize(("raw", "path"), [
    ({"slow_requests": {"threshold": "0s"}}, "slow_requests.threshold"),
    ({"n_plus_one": {"threshold": 0}}, "n_plus_one.threshold"),
    ({"trace_window": "1s", "root_span_wait": "2s"}, "root_span_wait"),
    ({"max_traces": 0}, "max_traces"),
    ({"metrics_flush_interval": "0s"}, "metrics_flush_interval"),
    ({"metrics_expiration": "-1s"}, "metrics_expiration"),
    ({"slow_requests": {"enabled": False}, "slow_queries": {"enabled": False}, "n_plus_one": {"enabled": False}},
     ""),
    ({"n_plus_one": {"treshold": 3}}, "n_plus_one.treshold"),
])
def test_invalid_configs(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigErrors) as err:
        decode(Config, raw, "connectors.span_detectors")
    want = f"connectors.span_detectors.{path}".rstrip(".")
    assert any(e.path == want for e in err.value.errors), err.value.errors


def test_defaults() -> None:
    c = Config()
    assert (c.slow_requests.threshold, c.slow_queries.threshold, c.n_plus_one.threshold) == (1.0, 0.1, 10)
    assert (c.trace_window, c.root_span_wait, c.max_traces, c.metrics_flush_interval) == (30.0, 2.0, 10000, 15.0)
    assert c.tick_interval == 1.0


def test_registered_as_traces_to_logs_and_metrics_connector() -> None:
    f = components.lookup(Kind.CONNECTOR, "span_detectors")
    assert f.connects == frozenset({(Signal.TRACES, Signal.LOGS), (Signal.TRACES, Signal.METRICS)})
    raw = """yaml:
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
exporters: {debug: {}}
connectors: {span_detectors: {}}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [span_detectors]}
    logs: {receivers: [span_detectors], exporters: [debug]}
    metrics: {receivers: [span_detectors], exporters: [debug]}
"""
    assert build(load([raw], env={})).connectors
    with pytest.raises(ConfigErrors, match="unknown processor type"):
        build(load([raw.replace("connectors: {span_detectors: {}}", "processors: {span_detectors: {}}")], env={}))
