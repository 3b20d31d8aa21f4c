"""Pre-encoded OTLP requests shaped like shared/docs/performance.md's payloads:
512 spans (half HTTP server, half DB client, 10 attributes each), 512 log
records (6 attributes, trace ids on 75 %), 200 metric points (100 histogram
points with 16 buckets, 100 cumulative sum points)."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
_ROUTES = ["/api/v1/users/{id}", "/api/v1/login", "/api/v1/register", "/api/v1/items", "/healthz"]


def _kv(attrs, key, value):  # type: ignore[no-untyped-def]
    kv = attrs.add()
    kv.key = key
    if isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = value


def _resource(res) -> None:  # type: ignore[no-untyped-def]
    for k, v in [("service.name", "auth-api"), ("service.version", "1.4.2"), ("service.instance.id", "pod-7d9f"),
                 ("deployment.environment", "prod"), ("k8s.pod.name", "auth-api-7d9f"), ("k8s.namespace.name", "auth"),
                 ("host.name", "node-3"), ("telemetry.sdk.language", "python")]:
        _kv(res.attributes, k, v)


def traces(n: int = 512, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _resource(rs.resource)
    scopes = [rs.scope_spans.add(), rs.scope_spans.add()]
    scopes[0].scope.name = "opentelemetry.instrumentation.fastapi"
    scopes[1].scope.name = "opentelemetry.instrumentation.sqlalchemy"
    t0 = 1_750_000_000_000_000_000
    for i in range(n):
        server = i % 2 == 0
        s = scopes[0 if server else 1].spans.add()
        s.trace_id = rnd.randbytes(16)
        s.span_id = rnd.randbytes(8)
        s.parent_span_id = rnd.randbytes(8)
        s.start_time_unix_nano = t0 + i * 1_000_000
        s.end_time_unix_nano = s.start_time_unix_nano + rnd.randint(100_000, 50_000_000)
        if server:
            route = rnd.choice(_ROUTES)
            s.name = f"GET {route}"
            s.kind = 2
            for k, v in [("http.request.method", "GET"), ("http.route", route), ("url.path", route.replace("{id}", "42")),
                         ("url.scheme", "http"), ("server.address", "auth-api"), ("server.port", 8000),
                         ("http.response.status_code", 200), ("user_agent.original", _UA),
                         ("client.address", "10.0.3.17"), ("network.protocol.version", "1.1")]:
                _kv(s.attributes, k, v)
        else:
            s.name = "SELECT auth"
            s.kind = 3
            for k, v in [("db.system.name", "postgresql"), ("db.namespace", "auth"), ("db.operation.name", "SELECT"),
                         ("db.collection.name", "users"),
                         ("db.query.text", "SELECT users.id, users.email, users.hashed_password FROM users WHERE users.id = %(id)s"),
                         ("server.address", "postgres"), ("server.port", 5432), ("network.peer.address", "10.0.9.4"),
                         ("db.response.returned_rows", 1), ("db.client.connection.pool.name", "default")]:
                _kv(s.attributes, k, v)
    return req.SerializeToString()


def logs(n: int = 512, seed: int = 2) -> bytes:
    rnd = random.Random(seed)
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _resource(rl.resource)
    sl = rl.scope_logs.add()
    sl.scope.name = "auth_api"
    t0 = 1_750_000_000_000_000_000
    for i in range(n):
        r = sl.log_records.add()
        r.time_unix_nano = t0 + i * 1000
        r.observed_time_unix_nano = r.time_unix_nano
        r.severity_number = rnd.choice([9, 9, 9, 13, 17])
        r.severity_text = {9: "INFO", 13: "WARN", 17: "ERROR"}[r.severity_number]
        r.body.string_value = f"User login {'succeeded' if i % 3 else 'failed'} for account {rnd.randint(1, 99999)} from 10.0.3.{i % 250}"
        if i % 4:
            r.trace_id = rnd.randbytes(16)
            r.span_id = rnd.randbytes(8)
        for k, v in [("code.function", "login"), ("code.lineno", 120 + i % 7), ("request_id", f"req-{rnd.getrandbits(48):x}"),
                     ("user_id", str(rnd.randint(1, 99999))), ("http.route", "/api/v1/login"), ("logger", "auth_api.routes")]:
            _kv(r.attributes, k, v)
    return req.SerializeToString()


def metrics(n_hist: int = 100, n_sum: int = 100) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _resource(rm.resource)
    sm = rm.scope_metrics.add()
    sm.scope.name = "opentelemetry.instrumentation.fastapi"
    t0 = 1_750_000_000_000_000_000
    h = sm.metrics.add()
    h.name = "http.server.request.duration"
    h.unit = "s"
    h.histogram.aggregation_temporality = 2
    bounds = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 15]
    for i in range(n_hist):
        p = h.histogram.data_points.add()
        p.start_time_unix_nano = t0
        p.time_unix_nano = t0 + 60_000_000_000
        p.explicit_bounds.extend(bounds)
        p.bucket_counts.extend([i % 5 + j for j in range(len(bounds) + 1)])
        p.count = sum(p.bucket_counts)
        p.sum = 0.1 * p.count
        for k, v in [("http.request.method", "GET"), ("http.route", _ROUTES[i % 5]),
                     ("http.response.status_code", 200 + i % 3), ("instance_shard", str(i))]:
            _kv(p.attributes, k, v)
    c = sm.metrics.add()
    c.name = "auth.login.attempts"
    c.unit = "{attempt}"
    c.sum.aggregation_temporality = 2
    c.sum.is_monotonic = True
    for i in range(n_sum):
        p = c.sum.data_points.add()
        p.start_time_unix_nano = t0
        p.time_unix_nano = t0 + 60_000_000_000
        p.as_int = 100 + i
        for k, v in [("outcome", "success" if i % 2 else "failure"), ("method", "password"), ("shard", str(i))]:
            _kv(p.attributes, k, v)
    return req.SerializeToString()
