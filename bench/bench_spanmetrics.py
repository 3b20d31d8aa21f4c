"""Span metrics and span detectors benchmark: spans/s and CPU per 100k spans through the connectors,
against the decode-only baseline, in one run.

Servers (each receives the same pre-encoded 512-span OTLP/gRPC requests from a separate load
process, one after the other; server on CPU 0, load on CPU 1):

* ``baseline``:     bench/baseline_server.py, decode + count (Python's floor for receiving OTLP);
* ``receive``:      sidecar, otlp receiver -> debug exporter (what the pipeline costs without connectors);
* ``span_metrics``: sidecar, traces -> span_metrics (route/method/db operation/table dimensions,
                    exemplars, 1 s flushes) -> metrics -> debug;
* ``detectors``:    sidecar, traces -> span_detectors -> logs + metrics -> debug;
* ``both``:         both connectors in the same traces pipeline.

Two payloads, each as 160 distinct pre-encoded requests sent in turn (fresh trace ids: a repeated
request would only hit the detectors' "already evaluated" path):

* ``standard``: bench/payloads.py's traces (256 HTTP server + 256 DB client spans, 10 attributes each,
  every span in its own trace: the worst case for the detectors' trace buffer);
* ``traces``:   64 whole traces of 8 spans (a root server span, one internal span, six DB queries;
  one trace in eight runs one statement five times, an N+1 at threshold 4), 10 attributes per span,
  the shape of a real FastAPI service.

Printed per server and payload: spans/s, server CPU seconds per 100k spans, spans per CPU-second,
peak RSS, and the ratio to the baseline's spans per CPU-second. A last table times the connectors'
per-span work alone (``aggregate``/``inspect`` on a decoded request, one core, in this process).

Usage: python bench/bench_spanmetrics.py [--seconds 4] [--inflight 8]
Bounded: every phase stops after --seconds (and 20,000 requests); loopback only.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_core
import payloads
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPANS_PER_REQUEST = 512
#: Distinct requests per payload (more than max_traces / 64 traces, so ids are new when they come round again).
VARIANTS = 160

SPAN_METRICS = """
  span_metrics:
    dimensions: [{name: http.route}, {name: http.request.method}, {name: db.operation.name},
                 {name: db.collection.name}]
    exemplars: {enabled: true}
    metrics_flush_interval: 1s"""
DETECTORS = """
  span_detectors:
    slow_requests: {threshold: 75ms}
    slow_queries: {threshold: 55ms}
    n_plus_one: {threshold: 4}
    root_span_wait: 500ms
    metrics_flush_interval: 1s"""


def sidecar_config(g: int, h: int, name: str) -> str:
    connectors = {"receive": [], "span_metrics": ["span_metrics"], "detectors": ["span_detectors"],
                  "both": ["span_metrics", "span_detectors"]}[name]
    head = bench_core.otlp_receivers(g, h) + """exporters:
  debug: {verbosity: basic}
service:
  telemetry: {logs: {level: warn}, metrics: {level: none}}
  pipelines:
"""
    if not connectors:
        return head + "    traces: {receivers: [otlp], exporters: [debug]}\n"
    out = head + f"    traces: {{receivers: [otlp], exporters: [{', '.join(connectors)}]}}\n"
    out += f"    metrics: {{receivers: [{', '.join(connectors)}], exporters: [debug]}}\n"
    if "span_detectors" in connectors:
        out += "    logs: {receivers: [span_detectors], exporters: [debug]}\n"
    blocks = {"span_metrics": SPAN_METRICS, "span_detectors": DETECTORS}
    return out + "connectors:" + "".join(blocks[c] for c in connectors) + "\n"


_STATEMENTS = [
    "SELECT users.id, users.email FROM users WHERE users.id = %(id_1)s",
    "SELECT posts.id, posts.title FROM posts WHERE posts.user_id = %(user_id_1)s",
    "SELECT sessions.id FROM sessions WHERE sessions.token = %(token_1)s",
    "UPDATE sessions SET last_seen = %(last_seen)s WHERE sessions.id = %(id_1)s",
    "SELECT roles.name FROM roles JOIN user_roles ON roles.id = user_roles.role_id WHERE user_roles.user_id = %(u)s",
    "INSERT INTO audit_log (user_id, action) VALUES (%(user_id)s, %(action)s)",
]


def whole_traces(n_traces: int = 64, seed: int = 3) -> bytes:
    """``n_traces`` traces of 8 spans: server root, internal span, 6 DB queries (an N+1 in one trace of 8)."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    payloads._resource(rs.resource)
    web, db = rs.scope_spans.add(), rs.scope_spans.add()
    web.scope.name = "opentelemetry.instrumentation.fastapi"
    db.scope.name = "opentelemetry.instrumentation.sqlalchemy"
    t0 = 1_750_000_000_000_000_000
    for t in range(n_traces):
        tid = rnd.randbytes(16)
        root_id, inner_id = rnd.randbytes(8), rnd.randbytes(8)
        start = t0 + t * 100_000_000
        route = payloads._ROUTES[t % len(payloads._ROUTES)]
        n_plus_one = t % 8 == 0
        for q in range(6):
            s = db.spans.add()
            s.trace_id, s.span_id, s.parent_span_id = tid, rnd.randbytes(8), root_id
            s.name, s.kind = "SELECT auth", 3
            s.start_time_unix_nano = start + (q + 1) * 1_000_000
            s.end_time_unix_nano = s.start_time_unix_nano + rnd.randint(200_000, 60_000_000)
            sql = _STATEMENTS[min(q, 1) if n_plus_one else q]
            for k, v in [("db.system.name", "postgresql"), ("db.namespace", "auth"), ("db.query.text", sql),
                         ("server.address", "postgres"), ("server.port", 5432), ("network.peer.address", "10.0.9.4"),
                         ("db.response.returned_rows", 1), ("db.client.connection.pool.name", "default"),
                         ("network.peer.port", 5432), ("db.operation.name", "SELECT auth")]:
                payloads._kv(s.attributes, k, v)
        for kind, span_id, parent, name in ((1, inner_id, root_id, f"GET {route} http send"),
                                            (2, root_id, b"", f"GET {route}")):
            s = web.spans.add()
            s.trace_id, s.span_id, s.parent_span_id = tid, span_id, parent
            s.name, s.kind = name, kind
            s.start_time_unix_nano = start
            s.end_time_unix_nano = start + rnd.randint(5_000_000, 80_000_000)
            for k, v in [("http.request.method", "GET"), ("http.route", route), ("url.path", route),
                         ("url.scheme", "http"), ("server.address", "auth-api"), ("server.port", 8000),
                         ("http.response.status_code", 200), ("user_agent.original", payloads._UA),
                         ("client.address", "10.0.3.17"), ("network.protocol.version", "1.1")]:
                payloads._kv(s.attributes, k, v)
    return req.SerializeToString()


def measure(pid: int, port: int, bodies: list[bytes], seconds: float, inflight: int) -> bench_core.Result:
    """bench_core.measure over gRPC, sending ``bodies`` in turn (warm-up, ``seconds`` of load, 0.3 s to finish)."""
    return bench_core.measure(pid, "grpc", port, "traces", bodies, seconds, inflight)


def per_span_cost(bodies: dict[str, list[bytes]], seconds: float = 2.0) -> list[tuple[str, str, float]]:
    """Microseconds per span of each connector's synchronous work on decoded requests (this process)."""
    import yaml

    from agent.component import ComponentID, Kind, Settings, Signal
    from agent.config.decode import decode
    from agent.connectors.span_detectors.config import Config as DetectorsConfig
    from agent.connectors.span_detectors.connector import SpanDetectorsConnector
    from agent.connectors.span_metrics.config import Config as MetricsConfig
    from agent.connectors.span_metrics.connector import SpanMetricsConnector
    from agent.pdata import Traces
    from agent.telemetry.metrics import SelfMetrics
    from agent.testing import SinkConsumer

    def settings(name: str) -> Settings:
        return Settings(ComponentID(name), Kind.CONNECTOR, SelfMetrics(process_metrics=False), logging.getLogger(name))

    sm_cfg = decode(MetricsConfig, yaml.safe_load(SPAN_METRICS)["span_metrics"], "c")
    det_cfg = decode(DetectorsConfig, yaml.safe_load(DETECTORS)["span_detectors"], "c")
    rows = []
    for payload, variants in bodies.items():
        for name in ("span_metrics", "span_metrics (no dimensions)", "span_detectors"):
            sink = SinkConsumer()
            if name.startswith("span_metrics"):
                cfg = sm_cfg if name == "span_metrics" else decode(MetricsConfig, {}, "c")
                conn: object = SpanMetricsConnector(settings("span_metrics"), cfg, {Signal.METRICS: sink})
                work = conn.aggregate  # type: ignore[attr-defined]
            else:
                conn = SpanDetectorsConnector(settings("span_detectors"), det_cfg,
                                              {Signal.LOGS: sink, Signal.METRICS: sink})
                work = conn.inspect  # type: ignore[attr-defined]
            spans = requests = 0
            t0 = time.process_time()
            while time.process_time() - t0 < seconds:
                td = Traces.parse(variants[requests % len(variants)])  # fresh upb message and trace ids
                work(td)
                spans += td.item_count
                requests += 1
            elapsed = time.process_time() - t0
            # Subtract the parse itself (measured alone) to show the connector's own cost.
            p0 = time.process_time()
            for i in range(requests):
                Traces.parse(variants[i % len(variants)]).proto.resource_spans  # noqa: B018
            parse = time.process_time() - p0
            rows.append((payload, name, (elapsed - parse) / spans * 1e6))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--inflight", type=int, default=8)
    args = ap.parse_args()
    bench_core.pin(0, 1)
    bodies = {"standard": [payloads.traces(seed=100 + i) for i in range(VARIANTS)],
              "traces": [whole_traces(seed=100 + i) for i in range(VARIANTS)]}
    rows: list[tuple[str, str, bench_core.Result]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("baseline", "receive", "span_metrics", "detectors", "both"):
            g, h = bench_core.free_port(), bench_core.free_port()
            if name == "baseline":
                cmd = bench_core.baseline_command(g, h)
            else:
                cfg = Path(tmp) / f"{name}.yaml"
                cfg.write_text(sidecar_config(g, h, name))
                cmd = bench_core.sidecar_command(cfg)
            with bench_core.running(cmd, g) as proc:
                for payload, variants in bodies.items():
                    rows.append((name, payload, measure(proc.pid, g, variants, args.seconds, args.inflight)))
    costs = per_span_cost(bodies)
    base = {p: r for n, p, r in rows if n == "baseline"}
    print(f"payloads: standard {len(bodies['standard'][0])} B, traces {len(bodies['traces'][0])} B, "
          f"{SPANS_PER_REQUEST} spans per request, {VARIANTS} variants each; {args.inflight} requests in flight; OTLP/gRPC; cpus={os.cpu_count()}")
    print(f"{'server':13} {'payload':9} {'spans/s':>10} {'CPU s/100k':>11} {'spans/CPU-s':>12} {'peak RSS':>9} "
          f"{'vs baseline':>11}")
    for name, payload, r in rows:
        print(f"{name:13} {payload:9} {r.rate:10,.0f} {r.cpu_per_100k:11.3f} {r.per_cpu_second:12,.0f} "
              f"{r.peak_rss / 2**20:7.1f}Mi {r.per_cpu_second / base[payload].per_cpu_second:10.2f}x")
    print("\nconnector work alone (decoded request, one core, parse subtracted):")
    for payload, name, us in costs:
        print(f"  {payload:9} {name:30} {us:6.2f} us/span ({1e6 / us:,.0f} spans/s)")


if __name__ == "__main__":
    main()
