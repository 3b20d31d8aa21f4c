"""Span metrics and span detectors end to end, with spans from the real OpenTelemetry SDK.

A small FastAPI app over SQLite (SQLAlchemy 2.0), instrumented by
opentelemetry-instrumentation-fastapi and -sqlalchemy, runs in-process
(TestClient, in a worker thread) and exports its spans with the SDK's OTLP
gRPC exporter to a running ``Service``:

    otlp -> traces -> span_metrics, spanmetrics/limited, span_metrics/delta, span_detectors
    span_metrics, spanmetrics/limited, span_metrics/delta, span_detectors -> metrics -> prometheus (OpenMetrics)
    span_detectors -> logs -> file

The app has an N+1 endpoint (``/users``: one query for the users, then one per
user, 12 > threshold 10), a well-formed one (``/users/joined``: one join), a
slow handler (``/slow``), one with a slow query (``/report``) and a plain one
(``/items/{item_id}``). The SDK's spans are also kept in memory, so every
expectation (counts, trace and span ids) comes from what the app really did.

A real Prometheus (``--enable-feature=exemplar-storage``) scrapes the
exporter every second; PromQL and the exemplar API must show the derived
series. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from tests import prom

pytestmark = pytest.mark.integration

if not prom.available():  # pragma: no cover - CI installs it
    pytest.skip(f"{prom.PROMETHEUS} is not installed (Debian package 'prometheus')", allow_module_level=True)

USERS = 12
N1_THRESHOLD = 10
N1_REQUESTS = 3
JOINED_REQUESTS = 2
ITEM_REQUESTS = 5
SLOW_S = 0.3
SLOW_QUERY_S = 0.12


def _config(tmp: Path, ports: dict[str, int]) -> str:
    return f"""yaml:
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
connectors:
  span_metrics:
    histogram: {{explicit: {{buckets: [5ms, 50ms, 250ms, 1s]}}}}
    dimensions:
      - name: http.route
      - name: http.request.method
      - name: db.operation.name
      - name: db.collection.name
    exemplars: {{enabled: true}}
    metrics_flush_interval: 200ms
  spanmetrics/limited:
    namespace: limited
    histogram: {{disable: true}}
    aggregation_cardinality_limit: 2
    metrics_expiration: 2s
    metrics_flush_interval: 200ms
  span_metrics/delta:
    namespace: delta
    dimensions: [{{name: http.route}}]
    histogram: {{unit: s, exponential: {{max_size: 40}}}}
    aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA
    metrics_flush_interval: 100ms
  span_detectors:
    slow_requests: {{threshold: 250ms}}
    slow_queries: {{threshold: 100ms}}
    n_plus_one: {{threshold: {N1_THRESHOLD}}}
    trace_window: 20s
    root_span_wait: 300ms
    metrics_flush_interval: 200ms
exporters:
  prometheus: {{endpoint: "127.0.0.1:{ports['exporter']}", enable_open_metrics: true}}
  file/findings: {{path: "{tmp / 'findings.jsonl'}", flush_interval: 50ms}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [span_metrics, spanmetrics/limited, span_metrics/delta, span_detectors]
    metrics:
      receivers: [span_metrics, spanmetrics/limited, span_metrics/delta, span_detectors]
      exporters: [prometheus]
    logs:
      receivers: [span_detectors]
      exporters: [file/findings]
"""


def drive_app(endpoint: str, db_path: Path) -> list[Any]:
    """Serve every request once through the instrumented app; return the SDK's finished spans."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine, event, func, select

    meta = MetaData()
    users = Table("users", meta, Column("id", Integer, primary_key=True), Column("name", String(50)))
    posts = Table("posts", meta, Column("id", Integer, primary_key=True),
                  Column("user_id", ForeignKey("users.id"), index=True), Column("title", String(100)))
    items = Table("items", meta, Column("id", Integer, primary_key=True), Column("name", String(50)))
    engine = create_engine(f"sqlite:///{db_path}")

    @event.listens_for(engine, "connect")
    def _functions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("pause", 1, lambda s: time.sleep(s) or 0)

    with engine.begin() as conn:  # seeded before instrumentation: no spans
        meta.create_all(conn)
        conn.execute(users.insert(), [{"id": i, "name": f"user {i}"} for i in range(1, USERS + 1)])
        conn.execute(posts.insert(), [{"user_id": i, "title": f"post {i}.{j}"}
                                      for i in range(1, USERS + 1) for j in range(2)])
        conn.execute(items.insert(), [{"id": i, "name": f"item {i}"} for i in range(ITEM_REQUESTS)])

    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "service.instance.id": "shop-1"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                                                   schedule_delay_millis=100))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(engine=engine, tracer_provider=provider)
    app = FastAPI()

    @app.get("/users")
    def list_users() -> list[dict[str, Any]]:  # N+1: one query per user
        with engine.connect() as conn:
            rows = conn.execute(select(users.c.id, users.c.name)).all()
            return [{"id": uid, "posts": conn.execute(select(posts.c.title).where(posts.c.user_id == uid))
                     .scalars().all()} for uid, _ in rows]

    @app.get("/users/joined")
    def list_users_joined() -> int:  # the same data in one query
        with engine.connect() as conn:
            return len(conn.execute(select(users.c.id, posts.c.title).select_from(users.join(posts))).all())

    @app.get("/slow")
    def slow() -> str:
        time.sleep(SLOW_S)
        return "done"

    @app.get("/report")
    def report() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.pause(SLOW_QUERY_S))).scalar_one())

    @app.get("/items/{item_id}")
    def item(item_id: int) -> str | None:
        with engine.connect() as conn:
            return conn.execute(select(items.c.name).where(items.c.id == item_id)).scalar_one_or_none()

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        with TestClient(app) as client:
            paths = (["/users"] * N1_REQUESTS + ["/users/joined"] * JOINED_REQUESTS + ["/slow", "/report"]
                     + [f"/items/{i}" for i in range(ITEM_REQUESTS)])
            for path in paths:
                assert client.get(path).status_code == 200, path
        assert provider.force_flush(10_000)
    finally:
        instrumentor.uninstrument()
        FastAPIInstrumentor.uninstrument_app(app)
        provider.shutdown()
        engine.dispose()
    return list(memory.get_finished_spans())


@pytest.fixture
async def stack(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[dict[str, Any]]:
    ports = {k: free_port() for k in ("grpc", "exporter", "prom")}
    svc = Service(build(load([_config(tmp_path, ports)], env={})), data_dir=str(tmp_path))
    server = await asyncio.to_thread(
        prom.start, tmp_path, "prom", ports["prom"],
        [prom.static_scrape("sidecar", f"127.0.0.1:{ports['exporter']}")], ["--enable-feature=exemplar-storage"])
    try:
        await svc.start()
        try:
            spans = await asyncio.to_thread(drive_app, f"127.0.0.1:{ports['grpc']}", tmp_path / "shop.db")
            yield {"svc": svc, "prom": server, "spans": spans, "ports": ports, "tmp": tmp_path}
        finally:
            await svc.shutdown()
    finally:
        await asyncio.to_thread(prom.stop, server)


async def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _route(span: Any) -> str | None:
    return span.attributes.get("http.route") if span.kind.name == "SERVER" else None


def _servers(spans: list[Any], route: str) -> list[Any]:
    return [s for s in spans if _route(s) == route]


def _findings(path: Path) -> list[dict[str, Any]]:
    """Every log record in the file exporter's OTLP/JSON lines, attributes flattened."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        for rl in json.loads(line)["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                for r in sl["logRecords"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in r.get("attributes", [])}
                    out.append({**r, "attrs": attrs})
    return out


async def test_red_metrics_detectors_and_exemplars_reach_prometheus(stack: dict[str, Any]) -> None:
    svc: Service = stack["svc"]
    server: prom.PromServer = stack["prom"]
    spans: list[Any] = stack["spans"]
    n1_traces = {s.context.trace_id for s in _servers(spans, "/users")}
    joined_traces = {s.context.trace_id for s in _servers(spans, "/users/joined")}
    [slow] = _servers(spans, "/slow")
    [report] = _servers(spans, "/report")
    assert len(n1_traces) == N1_REQUESTS and len(joined_traces) == JOINED_REQUESTS
    db_spans = [s for s in spans if s.kind.name == "CLIENT" and ("db.statement" in s.attributes
                                                                  or "db.query.text" in s.attributes)]
    posts_queries = [s for s in db_spans if "FROM posts" in (s.attributes.get("db.statement")
                                                             or s.attributes.get("db.query.text"))]
    assert len(posts_queries) == N1_REQUESTS * USERS

    # -- the detectors' log records: exactly one N+1 report per offending trace, none elsewhere --------
    findings_file = stack["tmp"] / "findings.jsonl"
    await _eventually(lambda: {f["attrs"]["span_detectors.finding"] for f in _findings(findings_file)}
                      >= {"n_plus_one", "slow_request", "slow_query"})
    await asyncio.sleep(0.5)  # a second report would come within root_span_wait + a tick
    records = _findings(findings_file)
    n1 = [r for r in records if r["attrs"]["span_detectors.finding"] == "n_plus_one"]
    assert sorted(bytes.fromhex(r["traceId"]) for r in n1) == sorted(t.to_bytes(16, "big") for t in n1_traces)
    for r in n1:
        a = r["attrs"]
        assert a["http.route"] == "/users" and a["db.query.summary"] == "SELECT posts"
        assert a["db.collection.name"] == "posts" and a["db.system.name"] == "sqlite"
        assert int(a["span_detectors.count"]) == USERS and "?" in a["db.query.text"]
        parent = next(s for s in _servers(spans, "/users") if s.context.trace_id.to_bytes(16, "big").hex()
                      == r["traceId"])
        assert r["spanId"] == parent.context.span_id.to_bytes(8, "big").hex()  # the loop's parent: the handler
        assert r["severityText"] == "WARN" and r["eventName"] == "span_detectors.n_plus_one"
    [sr] = [r for r in records if r["attrs"]["span_detectors.finding"] == "slow_request"]
    assert sr["traceId"] == f"{slow.context.trace_id:032x}" and sr["spanId"] == f"{slow.context.span_id:016x}"
    assert sr["attrs"]["http.route"] == "/slow" and float(sr["attrs"]["span_detectors.duration_ms"]) >= SLOW_S * 1000
    [sq] = [r for r in records if r["attrs"]["span_detectors.finding"] == "slow_query"]
    assert sq["traceId"] == f"{report.context.trace_id:032x}" and sq["attrs"]["http.route"] == "/report"
    assert not {bytes.fromhex(r["traceId"]) for r in records} & {t.to_bytes(16, "big") for t in joined_traces}

    # -- OpenMetrics exposition of the sidecar: series, buckets and exemplars ------------------------------
    url = f"http://127.0.0.1:{stack['ports']['exporter']}/metrics"
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}

    async def exposition() -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, headers=accept)).text

    def slow_bucket_line(text: str) -> str | None:
        for line in text.splitlines():
            if (line.startswith("traces_span_metrics_duration_milliseconds_bucket{") and 'http_route="/slow"' in line
                    and 'span_kind="SPAN_KIND_SERVER"' in line and 'le="1000.0"} 1 # {' in line):
                return line
        return None

    deadline = time.monotonic() + 20
    while (line := slow_bucket_line(text := await exposition())) is None:
        assert time.monotonic() < deadline, text[-3000:]
        await asyncio.sleep(0.1)
    exemplar = line.split(" # ", 1)[1]
    assert exemplar.startswith(f'{{trace_id="{slow.context.trace_id:032x}",span_id="{slow.context.span_id:016x}"}}')
    assert float(exemplar.split()[1]) >= SLOW_S * 1000  # the exemplar's value: the span's duration in ms
    calls_line = next(ln for ln in text.splitlines() if ln.startswith("traces_span_metrics_calls_total{")
                      and 'http_route="/slow"' in ln)
    assert f'# {{trace_id="{slow.context.trace_id:032x}"' in calls_line  # counters carry exemplars too

    # -- a real Prometheus scraping the sidecar --------------------------------------------------------------
    base = 'job="shop",instance="shop-1",otel_scope_name="spanmetricsconnector"'
    await prom.aeventually(server, f'traces_span_metrics_calls_total{{{base},http_route="/users",'
                                   f'span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}}',
                           lambda r: prom.only(r) == N1_REQUESTS)
    res = await prom.aeventually(server, f'traces_span_metrics_calls_total{{{base},http_route="/users"}}',
                                 lambda r: len(r) == 1)
    labels = res[0][0]
    assert labels["service_name"] == "shop" and labels["span_name"] == "GET /users"
    assert labels["http_request_method"] == "GET"
    # DB client spans by operation and table, parsed from the statement (SQLAlchemy sets neither).
    await prom.aeventually(
        server, f'sum(traces_span_metrics_calls_total{{{base},span_kind="SPAN_KIND_CLIENT",'
                f'db_operation_name="SELECT",db_collection_name="posts"}})',
        lambda r: prom.only(r) == len(posts_queries))
    await prom.aeventually(
        server, f'sum(traces_span_metrics_calls_total{{{base},db_collection_name="users"}})',
        lambda r: prom.only(r) == N1_REQUESTS + JOINED_REQUESTS)
    slow_sel = f'{base},http_route="/slow",span_kind="SPAN_KIND_SERVER"'
    await prom.aeventually(server, f'traces_span_metrics_duration_milliseconds_bucket{{{slow_sel},le="250.0"}}',
                           lambda r: prom.only(r) == 0)
    await prom.aeventually(server, f'traces_span_metrics_duration_milliseconds_bucket{{{slow_sel},le="1000.0"}}',
                           lambda r: prom.only(r) == 1)
    await prom.aeventually(server, f'traces_span_metrics_duration_milliseconds_count{{{slow_sel}}}',
                           lambda r: prom.only(r) == 1)
    await prom.aeventually(server, f'traces_span_metrics_duration_milliseconds_sum{{{slow_sel}}}',
                           lambda r: prom.only(r) >= SLOW_S * 1000)
    buckets = await prom.aeventually(
        server, f'traces_span_metrics_duration_milliseconds_bucket{{{base},http_route="/users",'
                f'span_kind="SPAN_KIND_SERVER"}}', lambda r: len(r) == 5)
    assert sorted(lbl["le"] for lbl, _ in buckets) == sorted(["5.0", "50.0", "250.0", "1000.0", "+Inf"])
    # Exemplars stored by Prometheus point at the slow request's trace.
    await _eventually_exemplar(server, f'traces_span_metrics_duration_milliseconds_bucket{{{slow_sel}}}',
                               f"{slow.context.trace_id:032x}")
    # The detectors' counters.
    det = 'job="shop",instance="shop-1",otel_scope_name="otel_sidecar.span_detectors"'
    n1_res = await prom.aeventually(server, f'span_detectors_n_plus_one_total{{{det},http_route="/users"}}',
                                    lambda r: prom.only(r) == N1_REQUESTS)
    assert n1_res[0][0]["db_query_summary"] == "SELECT posts" and n1_res[0][0]["db_system_name"] == "sqlite"
    assert len(n1_res[0][0]["db_query_fingerprint"]) == 16
    await prom.aeventually(server, f'span_detectors_slow_requests_total{{{det},http_route="/slow"}}',
                           lambda r: prom.only(r) == 1)
    await prom.aeventually(server, f'span_detectors_slow_queries_total{{{det},http_route="/report"}}',
                           lambda r: prom.only(r) == 1)
    assert await prom.aquery(server, 'span_detectors_n_plus_one_total{http_route="/users/joined"}') == []

    # -- delta temporality (exponential histogram in seconds), accumulated by the exporter --------------------
    await prom.aeventually(server, 'sum(delta_calls_total{job="shop"})', lambda r: prom.only(r) == len(spans))
    await prom.aeventually(server, 'delta_duration_seconds_count{job="shop",http_route="/slow"}',
                           lambda r: prom.only(r) == 1)
    await prom.aeventually(server, 'delta_duration_seconds_bucket{job="shop",http_route="/slow",le="0.25"}',
                           lambda r: prom.only(r) == 0)
    await prom.aeventually(server, 'delta_duration_seconds_bucket{job="shop",http_route="/slow",le="0.5"}',
                           lambda r: prom.only(r) == 1)

    # -- the cardinality limit: 2 series + 1 overflow series holding the rest ------------------------------
    limited = await prom.aeventually(server, 'limited_calls_total{job="shop"}', lambda r: len(r) == 3)
    overflow = [v for lbl, v in limited if lbl.get("otel_metric_overflow") == "true"]
    assert len(overflow) == 1 and overflow[0] > 0
    assert sum(v for _, v in limited) == len(spans)
    # ...and its series expire 2 s after the last span (the exporter keeps serving the last values).
    t = svc.telemetry
    assert t.value("otelcol_connector_span_metrics_overflow_spans_total", {"connector": "spanmetrics/limited"}) > 0
    await _eventually(lambda: t.value("otelcol_connector_span_metrics_series",
                                      {"connector": "spanmetrics/limited"}) == 0)
    assert t.value("otelcol_connector_span_metrics_series", {"connector": "span_metrics"}) > 0
    assert t.value("otelcol_connector_span_metrics_spans_total", {"connector": "span_metrics"}) == len(spans)
    assert t.value("otelcol_connector_span_detectors_findings_total",
                   {"connector": "span_detectors", "detector": "n_plus_one"}) == N1_REQUESTS


async def _eventually_exemplar(server: prom.PromServer, promql: str, trace_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    body: Any = None
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            now = time.time()
            r = await client.get(f"{server.url}/api/v1/query_exemplars",
                                 params={"query": promql, "start": now - 300, "end": now + 60})
            body = r.json()
            found = {e["labels"].get("trace_id") for series in body.get("data") or [] for e in series["exemplars"]}
            if trace_id in found:
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"no exemplar with trace_id {trace_id} for {promql}: {body}")
