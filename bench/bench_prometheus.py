"""Prometheus exporter benchmark: ingest rate, render time and size vs prometheus_client, RSS, a real scrape.

Usage: python bench/bench_prometheus.py [--quick] [--sizes 10000 100000]

1. Ingest: ``consume_metrics`` on pre-encoded OTLP requests (wire bytes, parsed by
   the call, as from the receiver): the shared ``payloads.metrics()`` request
   (100 histogram points with 16 buckets + 100 cumulative sums), and requests of
   500 counter points; first pass (series creation) and steady state (updates).
2. Render, for N series of counters and of 10-bucket histograms (3 labels each
   plus job, instance and otel_scope_name, as the exporter produces them):
   ours (text 0.0.4, OpenMetrics, protobuf; the streamed path, whole body),
   against prometheus_client 0.2x rendering *the same* series and values two ways:
   ``generate_latest`` over a registry of ``Counter``/``Histogram`` children (what
   an application does; ``_created`` disabled, as the sidecar's own metrics
   disable it) and over a custom collector yielding ``CounterMetricFamily`` /
   ``HistogramMetricFamily`` from plain data (prometheus_client's fastest path).
   The ratio column divides prometheus_client's best time by ours.
3. RSS per 100k series (fresh subprocess each: counters, histograms).
4. A real scrape: 100k series served by the exporter on loopback, fetched by
   curl in its own process (identity and gzip), with the sidecar event loop's
   worst stall measured while the scrape runs.

Not part of the test suite. Everything stays on 127.0.0.1 and is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import payloads  # noqa: E402
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402

from agent.component import ComponentID, Kind, Settings  # noqa: E402
from agent.config.decode import decode  # noqa: E402
from agent.exporters.prometheus import Config, PrometheusExporter  # noqa: E402
from agent.exporters.prometheus.nativehist import render_protobuf  # noqa: E402
from agent.exporters.prometheus.render import Format, RenderOptions  # noqa: E402
from agent.exporters.prometheus.server import produce  # noqa: E402
from agent.pdata import Metrics  # noqa: E402
from agent.telemetry.metrics import SelfMetrics  # noqa: E402

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
T0 = 1_750_000_000_000_000_000
PER_REQUEST = 500


def settings() -> Settings:
    return Settings(ComponentID("prometheus"), Kind.EXPORTER, SelfMetrics(process_metrics=False),
                    logging.getLogger("bench"))


def exporter(**kw: Any) -> PrometheusExporter:
    cfg = decode(Config, {"endpoint": "127.0.0.1:0", "max_series": 0, "max_series_per_metric": 0, **kw})
    return PrometheusExporter(settings(), cfg)


def _kv(attrs: Any, key: str, value: str) -> None:
    kv = attrs.add()
    kv.key = key
    kv.value.string_value = value


def labels_of(i: int) -> tuple[str, str, str]:
    return ("GET" if i % 2 else "POST", f"/api/v1/items/{i % 50}", str(i))


def requests(n: int, kind: str, t: int = 0) -> list[bytes]:
    """``n`` series as pre-encoded requests of 500 points; ``kind``: counter or histogram."""
    out = []
    for start in range(0, n, PER_REQUEST):
        req = ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        for k, v in (("service.name", "bench"), ("service.instance.id", "pod-1")):
            _kv(rm.resource.attributes, k, v)
        sm = rm.scope_metrics.add()
        sm.scope.name = "bench"
        m = sm.metrics.add()
        if kind == "counter":
            m.name, m.unit = "http.requests", "{request}"
            m.sum.aggregation_temporality, m.sum.is_monotonic = 2, True
            points = m.sum.data_points
        else:
            m.name, m.unit = "http.duration", "s"
            m.histogram.aggregation_temporality = 2
            points = m.histogram.data_points
        for i in range(start, min(n, start + PER_REQUEST)):
            p = points.add()
            p.start_time_unix_nano, p.time_unix_nano = T0, T0 + (t + 1) * 1_000_000_000
            if kind == "counter":
                p.as_int = i + t
            else:
                p.explicit_bounds.extend(BOUNDS)
                p.bucket_counts.extend([(i + j + t) % 7 for j in range(len(BOUNDS) + 1)])
                p.count = sum(p.bucket_counts)
                p.sum = p.count * 0.3
            for key, value in zip(("http.method", "http.route", "series"), labels_of(i), strict=True):
                _kv(p.attributes, key, value)
        out.append(req.SerializeToString())
    return out


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# -- 1. ingest ----------------------------------------------------------------------------------------
def bench_ingest() -> None:
    print("\n## Ingest (consume_metrics on pre-encoded requests, parse included)")
    loop = asyncio.new_event_loop()
    try:
        for label, make in (("payloads.metrics (100 hist x16 buckets + 100 sums)", lambda t: [payloads.metrics()]),
                            ("counters, 500 points/request, 20k series", lambda t: requests(20_000, "counter", t)),
                            ("histograms x10 buckets, 500/request, 20k series", lambda t: requests(20_000, "histogram", t))):
            e = exporter()
            batches = [make(t) for t in range(4)]
            points = sum(Metrics(raw=b).item_count for b in batches[0])

            async def run(batch: list[bytes], e: PrometheusExporter = e) -> None:
                for raw in batch:
                    await e.consume_metrics(Metrics(raw=raw))

            first, _ = timed(lambda b=batches[0]: loop.run_until_complete(run(b)))
            steady = min(timed(lambda b=b: loop.run_until_complete(run(b)))[0] for b in batches[1:])
            if label.startswith("payloads"):  # one small request: repeat it for a stable figure
                steady, _ = timed(partial(loop.run_until_complete, run(batches[1] * 200)))
                steady /= 200
            print(f"- {label}: new series {points / first:,.0f} points/s; "
                  f"updates {points / steady:,.0f} points/s")
    finally:
        loop.close()


# -- 2. render -------------------------------------------------------------------------------------------
def prometheus_client_registry(n: int, kind: str) -> Any:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    reg = CollectorRegistry(auto_describe=False)
    names = ["http_method", "http_route", "instance", "job", "otel_scope_name", "series"]
    if kind == "counter":
        c = Counter("http_requests", "", names, registry=reg)
        for i in range(n):
            m, r, s = labels_of(i)
            c.labels(m, r, "pod-1", "bench", "bench", s).inc(i)
    else:
        h = Histogram("http_duration_seconds", "", names, registry=reg, buckets=BOUNDS)
        for i in range(n):
            m, r, s = labels_of(i)
            h.labels(m, r, "pod-1", "bench", "bench", s).observe(0.3)
    return reg


class FamilyCollector:
    """prometheus_client's fastest path: families built from plain data at collect time."""

    def __init__(self, n: int, kind: str) -> None:
        self.kind = kind
        self.rows = [(labels_of(i), i) for i in range(n)]

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        names = ["http_method", "http_route", "instance", "job", "otel_scope_name", "series"]
        if self.kind == "counter":
            fam: Any = CounterMetricFamily("http_requests", "", labels=names)
            for (m, r, s), v in self.rows:
                fam.add_metric([m, r, "pod-1", "bench", "bench", s], v)
        else:
            fam = HistogramMetricFamily("http_duration_seconds", "", labels=names)
            for (m, r, s), v in self.rows:
                cum, total = [], 0
                for j in range(len(BOUNDS) + 1):
                    total += (v + j) % 7
                    cum.append((str(BOUNDS[j]) if j < len(BOUNDS) else "+Inf", total))
                fam.add_metric([m, r, "pod-1", "bench", "bench", s], cum, total * 0.3)
        yield fam


def bench_render(sizes: list[int], quick: bool) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    print("\n## Render (best of 3 for ours; bytes of the text body)")
    print("| series | kind | ours text 0.0.4 | ours OpenMetrics | ours protobuf | ours text+gzip | "
          "prometheus_client children | prometheus_client custom collector | ratio (best client / ours text) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for kind in ("counter", "histogram"):
            e = exporter()
            for raw in requests(n, kind):
                e.accumulator.ingest(Metrics(raw=raw))
            snap = e.accumulator.snapshot()
            opts = RenderOptions()
            t_text, body = timed(partial(produce, snap, Format.TEXT, False, opts), 3)
            t_om, body_om = timed(partial(produce, snap, Format.OPENMETRICS, False, opts), 3)
            t_pb, body_pb = timed(partial(render_protobuf, snap, opts), 3)
            t_gz, body_gz = timed(partial(produce, snap, Format.TEXT, True, opts), 3)
            del snap, e
            gc.collect()
            client_times = []
            cells = []
            skip_children = quick and (n > 10_000)
            if skip_children:
                cells.append("skipped (--quick)")
            else:
                reg = prometheus_client_registry(n, kind)
                t_pc, body_pc = timed(lambda reg=reg: generate_latest(reg))
                client_times.append(t_pc)
                cells.append(f"{t_pc * 1000:,.0f} ms ({len(body_pc) / 1e6:.1f} MB)")
                del reg, body_pc
                gc.collect()
            reg2 = CollectorRegistry(auto_describe=False)
            reg2.register(FamilyCollector(n, kind))  # type: ignore[arg-type]
            t_cc, body_cc = timed(lambda reg2=reg2: generate_latest(reg2))
            client_times.append(t_cc)
            cells.append(f"{t_cc * 1000:,.0f} ms ({len(body_cc) / 1e6:.1f} MB)")
            del reg2, body_cc
            gc.collect()
            ratio = min(client_times) / t_text
            print(f"| {n:,} | {kind} | {t_text * 1000:,.0f} ms ({len(body) / 1e6:.1f} MB) | "
                  f"{t_om * 1000:,.0f} ms ({len(body_om) / 1e6:.1f} MB) | {t_pb * 1000:,.0f} ms "
                  f"({len(body_pb) / 1e6:.1f} MB) | {t_gz * 1000:,.0f} ms ({len(body_gz) / 1e6:.1f} MB) | "
                  f"{cells[0]} | {cells[-1]} | {ratio:.1f}x |")
            del body, body_om, body_pb, body_gz
            gc.collect()


# -- 3. RSS ------------------------------------------------------------------------------------------------
def rss_child(kind: str, n: int) -> None:
    """Subprocess mode: print the RSS growth of holding ``n`` series."""
    batches = requests(n, kind)
    gc.collect()
    before = psutil.Process().memory_info().rss
    e = exporter()
    for raw in batches:
        e.accumulator.ingest(Metrics(raw=raw))
    del batches
    gc.collect()
    after = psutil.Process().memory_info().rss
    print(f"{(after - before) / 2**20:.1f}")


def bench_rss() -> None:
    print("\n## RSS per 100k series (fresh process each; store only, request bytes excluded)")
    for kind in ("counter", "histogram"):
        out = subprocess.run([sys.executable, __file__, "--rss-child", kind, "100000"], capture_output=True,
                             text=True, timeout=600, check=True).stdout.strip()
        print(f"- {kind}s: +{out} MiB")


# -- 4. real scrape ----------------------------------------------------------------------------------------
async def _scrape_once(port: int, encoding: str) -> tuple[float, int, float]:
    """One scrape by a separate client process (curl, as Prometheus would be); returns
    (seconds, bytes on the wire, worst event-loop stall in the sidecar meanwhile)."""
    stall = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal stall
        while not stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - t0 - 0.001)

    tick = asyncio.create_task(ticker())
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", "-H", f"Accept-Encoding: {encoding}",
        f"http://127.0.0.1:{port}/metrics", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    stop = True
    await tick
    seconds, size = out.decode().split()
    return float(seconds), int(size), stall


async def _bench_scrape(n: int) -> None:
    for kind in ("counter", "histogram"):
        e = exporter()
        await e.start(None)  # type: ignore[arg-type]
        try:
            for raw in requests(n, kind):
                await e.consume_metrics(Metrics(raw=raw))
            for encoding in ("identity", "gzip"):
                await _scrape_once(e.server.port, encoding)  # warm-up (label encodings, templates)
                e.accumulator.generation += 1  # defeat the body cache: measure a fresh render
                elapsed, size, stall = await _scrape_once(e.server.port, encoding)
                print(f"- {n:,} {kind} series, {encoding}: {elapsed * 1000:,.0f} ms, {size / 1e6:.1f} MB on the "
                      f"wire, worst event-loop stall {stall * 1000:.1f} ms")
        finally:
            await e.shutdown()


def bench_scrape(n: int) -> None:
    print("\n## Real scrape over loopback HTTP (text 0.0.4)")
    asyncio.run(_bench_scrape(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip prometheus_client children at 100k series")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rss-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]))
        return
    print(f"# bench_prometheus: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_ingest()
    bench_render(args.sizes, args.quick)
    bench_rss()
    bench_scrape(max(args.sizes))


if __name__ == "__main__":
    main()
